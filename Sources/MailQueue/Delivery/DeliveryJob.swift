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

        public init(id: Int64, address: String, originalRecipient: String? = nil, notify: RecipientParameters.Notify? = nil, attempts: Int = 0) {
            self.id = id
            self.address = address
            self.originalRecipient = originalRecipient
            self.notify = notify
            self.attempts = attempts
        }
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
    /// The text: read with the claim, or handed over by the committer.
    public var content: StoredContent

    public var isNotification: Bool { reversePath.isEmpty }

    public init(messageID: Int64, queueID: String, reversePath: String, parameters: MailParameters = MailParameters(), size: Int,
                arrivedAt: Date, expiresAt: Date, delayWarnedAt: Date? = nil, spoolFile: String? = nil, domain: String,
                recipients: [Recipient], content: StoredContent) {
        self.messageID = messageID
        self.queueID = queueID
        self.reversePath = reversePath
        self.parameters = parameters
        self.size = size
        self.arrivedAt = arrivedAt
        self.expiresAt = expiresAt
        self.delayWarnedAt = delayWarnedAt
        self.spoolFile = spoolFile
        self.domain = domain
        self.recipients = recipients
        self.content = content
    }
}

extension DeliveryJob {
    /// A job for mail that was just committed, built from what the committer holds rather than read back.
    init(fresh message: IncomingMessage, messageID: Int64, content: StoredContent, domain: String, recipients: [Recipient]) {
        // What the queue keeps of the MAIL parameters, as a claim reads them back.
        var parameters = MailParameters()
        parameters.body = message.envelope.parameters.body
        parameters.isSMTPUTF8 = message.envelope.parameters.isSMTPUTF8
        parameters.dsnReturn = message.envelope.parameters.dsnReturn
        parameters.dsnEnvelopeID = message.envelope.parameters.dsnEnvelopeID
        var spoolFile: String?
        if case .spooled(let fileName) = message.content { spoolFile = fileName }
        self.init(
            messageID: messageID, queueID: message.queueID, reversePath: message.envelope.reversePath?.description ?? "",
            parameters: parameters, size: message.size, arrivedAt: message.arrivedAt, expiresAt: message.expiresAt,
            delayWarnedAt: nil, spoolFile: spoolFile, domain: domain, recipients: recipients, content: content
        )
    }
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
    /// What the attempt ended with: a server's reply (`last_reply` from `last_relay`) or a local error
    /// (`last_error`), as `petrel queue show` prints it.
    public var result: AttemptResult
    public var attemptedAt: Date
    /// What the sender is to be told of this result, if anything. It waits as a pending notice until the
    /// message's notification is made (see ``QueueStore/recordResults(_:in:)``).
    public var notice: RecipientDeliveryStatus?

    public init(recipientID: Int64, disposition: Disposition, result: AttemptResult, attemptedAt: Date,
                notice: RecipientDeliveryStatus? = nil) {
        self.recipientID = recipientID
        self.disposition = disposition
        self.result = result
        self.attemptedAt = attemptedAt
        self.notice = notice
    }
}

/// The stored text of a message, for sending: small messages whole in memory, large ones by file.
public enum StoredContent: Sendable, Hashable {
    case inline(ByteBuffer)
    case spooled(traceHeaders: ByteBuffer, path: String)
}

