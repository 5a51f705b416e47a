import NIOCore

/// What the connection's gate passes to the session task: bytes in order, or an event that must be
/// seen in order with them.
enum InboundEvent: Sendable {
    case bytes(ByteBuffer)
    /// No input for the current timeout (RFC 5321 §4.5.3.2).
    case timedOut
    /// The server is shutting down: finish the transaction in progress, then say `421 4.3.2`.
    case shutdown
}
