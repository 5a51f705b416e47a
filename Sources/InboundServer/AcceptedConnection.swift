import NIOCore
import SMTPTransport

/// A connection as the accept loop hands it over: the async channel and its gate.
struct AcceptedConnection: Sendable {
    let channel: NIOAsyncChannel<ConnectionEvent, ByteBuffer>
    let gate: NIOLoopBound<ConnectionGate>
}
