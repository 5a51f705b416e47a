/// One message to send to one destination: the envelope the client states with `MAIL` and `RCPT`.
public struct OutboundTransaction: Hashable, Sendable {
    /// `""` is the null reverse path.
    public var reversePath: String
    public var parameters: MailParameters
    public var recipients: [OutboundRecipient]
    /// Octets of message text, declared with `SIZE=` (RFC 1870).
    public var size: Int
    /// With `SMTPUTF8` in the parameters: whether anything needs it (``MessageRequirements/needsSMTPUTF8``).
    /// When nothing does, a server without SMTPUTF8 gets the message without the parameter.
    public var needsSMTPUTF8: Bool

    public init(reversePath: String, parameters: MailParameters, recipients: [OutboundRecipient], size: Int, needsSMTPUTF8: Bool = true) {
        self.reversePath = reversePath
        self.parameters = parameters
        self.recipients = recipients
        self.size = size
        self.needsSMTPUTF8 = needsSMTPUTF8
    }
}

public struct OutboundRecipient: Hashable, Sendable {
    public var address: String
    public var parameters: RecipientParameters

    public init(address: String, parameters: RecipientParameters = .init()) {
        self.address = address
        self.parameters = parameters
    }
}

/// What became of one recipient in a transaction.
public enum RecipientOutcome: Hashable, Sendable {
    /// Accepted with the final reply to the message text (RFC 5321 §4.1.1.4); `251` counts too.
    case delivered(SMTPReply)
    /// A `4xx`: try again later.
    case deferred(SMTPReply)
    /// A `5xx` (`551` included): give up and report it.
    case failed(SMTPReply)

    public var reply: SMTPReply {
        switch self {
        case .delivered(let reply), .deferred(let reply), .failed(let reply): reply
        }
    }
}
