import NIOCore

/// A connection as the accept loop hands it over: the async channel and its gate.
struct AcceptedConnection: Sendable {
    let channel: NIOAsyncChannel<InboundEvent, ByteBuffer>
    let gate: NIOLoopBound<InboundGate>
}
