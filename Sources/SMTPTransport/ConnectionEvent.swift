import NIOCore

/// What a connection's gate passes to the task that runs the conversation: bytes in order, or an event
/// that must be seen in order with them.
public enum ConnectionEvent: Sendable {
    case bytes(ByteBuffer)
    /// No input for the current timeout (RFC 5321 §4.5.3.2).
    case timedOut
    /// The process is shutting down: finish the transaction in progress, then close.
    case shutdown
}
