import NIOCore

/// What a connection's gate passes to the task that runs the conversation: bytes in order, or an event
/// that must be seen in order with them.
public enum ConnectionEvent: Sendable {
    case bytes(ByteBuffer)
    /// No input for the current timeout (RFC 5321 §4.5.3.2).
    case timedOut
    /// The process is shutting down: finish the transaction in progress, then close.
    case shutdown
    /// The TLS handshake completed; bytes after this event are decrypted. The version, as
    /// `TLSv1.3`. (RFC 3207 §4.2: everything received before it is discarded by the session.)
    case tlsEstablished(version: String)
    /// The TLS handshake failed; the connection is closing.
    case tlsFailed(reason: String)
}
