import Foundation
import NIOCore
import SMTPProtocol

/// Recipients of one message for one destination domain, claimed by a worker under a lease: the unit
/// of delivery (one SMTP transaction, RFC 5321 §3.3).
public struct DeliveryJob: Sendable, Hashable {
    public struct Recipient: Sendable, Hashable {
        public var id: Int64
        public var address: String
        public var originalRecipient: String?
        /// `nil` when the client gave no NOTIFY (RFC 3461 §4.1).
        public var notify: RecipientParameters.Notify?
        /// Attempts before this one.
        public var attempts: Int
    }

    public var messageID: Int64
    public var queueID: String
    /// `""` is the null reverse path: the message is a notification and is never bounced.
    public var reversePath: String
    public var parameters: MailParameters
    public var size: Int
    public var arrivedAt: Date
    public var expiresAt: Date
    public var delayWarnedAt: Date?
    public var spoolFile: String?
    public var domain: String
    public var recipients: [Recipient]

    public var isNotification: Bool { reversePath.isEmpty }
}

/// What became of one recipient in one attempt, as written back to the queue.
public struct RecipientResult: Sendable, Hashable {
    public enum Disposition: Sendable, Hashable {
        case delivered
        case deferred(nextAttemptAt: Date)
        case failed
    }

    public var recipientID: Int64
    public var disposition: Disposition
    /// The reply as an operator reads it: `550 5.1.1 User unknown`.
    public var reply: String
    /// `host[ip]:port`, when a server was reached.
    public var relay: String?
    public var attemptedAt: Date

    public init(recipientID: Int64, disposition: Disposition, reply: String, relay: String?, attemptedAt: Date) {
        self.recipientID = recipientID
        self.disposition = disposition
        self.reply = reply
        self.relay = relay
        self.attemptedAt = attemptedAt
    }
}

/// The stored text of a message, for sending: small messages whole in memory, large ones by file.
public enum StoredContent: Sendable {
    case inline(ByteBuffer)
    case spooled(traceHeaders: ByteBuffer, path: String)
}

