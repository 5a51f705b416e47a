import NIOCore
import NIOSSL
import SMTPTransport

/// A connection as the accept loop hands it over: the async channel and its gate.
struct AcceptedConnection: Sendable {
    let channel: NIOAsyncChannel<ConnectionEvent, ByteBuffer>
    let gate: NIOLoopBound<ConnectionGate>
    let listener: ListenerKind
    /// The TLS context as it was when the connection was accepted: STARTTLS uses it.
    let tlsContext: NIOSSLContext?
}
