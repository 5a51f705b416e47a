import Foundation
import NIOCore
import SMTPProtocol

/// A message the server has read and wants the queue to take responsibility for.
public struct IncomingMessage: Sendable {
    /// Where the text is: small messages travel inline and are written in the same transaction as the
    /// envelope; large ones were streamed to a spool file, already fsynced, named here.
    public enum Content: Sendable {
        case inline(ByteBuffer)
        case spooled(fileName: String)
    }

    public var queueID: String
    public var envelope: Envelope
    public var authenticatedUser: String?
    /// Header fields Petrel prepends: `Received:`, and `Date:`/`Message-ID:` when added.
    public var traceHeaders: ByteBuffer
    public var content: Content
    /// Octets of text, trace headers not included.
    public var contentSize: Int
    public var arrivedAt: Date
    public var expiresAt: Date

    public init(queueID: String, envelope: Envelope, authenticatedUser: String? = nil, traceHeaders: ByteBuffer,
                content: Content, contentSize: Int, arrivedAt: Date, expiresAt: Date) {
        self.queueID = queueID
        self.envelope = envelope
        self.authenticatedUser = authenticatedUser
        self.traceHeaders = traceHeaders
        self.content = content
        self.contentSize = contentSize
        self.arrivedAt = arrivedAt
        self.expiresAt = expiresAt
    }

    public var size: Int { traceHeaders.readableBytes + contentSize }
}

extension Date {
    /// Unix milliseconds, as the queue stores times.
    public var unixMilliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
    public init(unixMilliseconds: Int64) { self.init(timeIntervalSince1970: Double(unixMilliseconds) / 1000) }
}
