/// One recipient as given in `RCPT TO`, with its DSN parameters (RFC 3461 §4).
public struct EnvelopeRecipient: Hashable, Sendable {
    public var mailbox: Mailbox
    public var parameters: RecipientParameters

    public init(mailbox: Mailbox, parameters: RecipientParameters = .init()) {
        self.mailbox = mailbox
        self.parameters = parameters
    }
}

/// A mail transaction as the server accepted it (RFC 5321 §3.3): what the queue stores with the message.
public struct Envelope: Hashable, Sendable {
    /// `nil` is the null reverse path `<>`: the message is itself a notification and is never bounced.
    public var reversePath: Mailbox?
    public var parameters: MailParameters
    public var recipients: [EnvelopeRecipient]
    public var client: ClientIdentity

    public init(reversePath: Mailbox?, parameters: MailParameters, recipients: [EnvelopeRecipient], client: ClientIdentity) {
        self.reversePath = reversePath
        self.parameters = parameters
        self.recipients = recipients
        self.client = client
    }
}

/// Who the client is, as the trace header records it (RFC 5321 §4.4).
public struct ClientIdentity: Hashable, Sendable {
    /// The client's IP address, as text.
    public var address: String
    /// The name given in HELO or EHLO.
    public var greetingName: String
    /// `SMTP` after HELO, `ESMTP` after EHLO (RFC 3848 §2 lists the values with TLS and AUTH, RFC 6531 §3.7.3
    /// those with SMTPUTF8): see ``TraceHeaders/protocolName(isExtended:isTLS:isAuthenticated:isSMTPUTF8:)``.
    public var protocolName: String
    /// The TLS version and cipher, when the session was encrypted (`TLSv1.3 TLS_AES_256_GCM_SHA384`).
    public var tlsDescription: String?
    /// The SMTP AUTH user (RFC 4954), when the client authenticated.
    public var authenticatedUser: String?
    /// The client's name from reverse DNS, when that name's addresses include the client's ("forward-confirmed");
    /// `nil` when there is none, it does not resolve back, or the lookup was not done in time.
    public var verifiedName: String?

    public init(address: String, greetingName: String, protocolName: String, tlsDescription: String? = nil,
                authenticatedUser: String? = nil, verifiedName: String? = nil) {
        self.address = address
        self.greetingName = greetingName
        self.protocolName = protocolName
        self.tlsDescription = tlsDescription
        self.authenticatedUser = authenticatedUser
        self.verifiedName = verifiedName
    }
}
