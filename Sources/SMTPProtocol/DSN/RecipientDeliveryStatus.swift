/// What happened to one recipient of a message, as a delivery status notification reports it: the
/// per-recipient fields of RFC 3464 §2.3.
public struct RecipientDeliveryStatus: Hashable, Sendable {
    /// RFC 3464 §2.3.3 `Action`.
    public enum Action: String, Sendable {
        /// The message could not be delivered and no further attempt will be made.
        case failed
        /// Delivery has not succeeded yet and will be retried.
        case delayed
        /// The message was delivered to the recipient's mailbox.
        case delivered
        /// The message went to a system that does not send delivery notifications (RFC 3461 §6.2.2).
        case relayed
        /// The recipient was an alias or list, and the message went on to its members (RFC 3461 §6.2.7.4).
        case expanded
    }

    /// The recipient's address as the `RCPT TO` path, `user@example.com`, rendered as
    /// `Final-Recipient: rfc822; user@example.com` (RFC 3464 §2.3.2). An address with non-ASCII octets
    /// is rendered with the `utf-8` address type of RFC 6533 §3. A value that already starts with an
    /// address type, `rfc822; user@example.com`, is rendered as it is.
    public var finalRecipient: String
    /// The `ORCPT` parameter as given at `RCPT TO`, `rfc822;a+2Bb@example.com`: an address type, a
    /// semicolon and the address in xtext (RFC 3461 §4.2). `Original-Recipient` shows the xtext decoded
    /// (RFC 3464 §2.3.1).
    public var originalRecipient: String?
    public var action: Action
    /// RFC 3464 §2.3.4 `Status`, from RFC 3463: `5.1.1`, `4.4.7`.
    public var status: EnhancedStatusCode
    /// The server that gave the final answer, `dns; mx.example.com` (RFC 3464 §2.3.5). A bare host
    /// name is given the `dns` type.
    public var remoteMTA: String?
    /// The remote server's own reply, `smtp; 550 5.1.1 User unknown` (RFC 3464 §2.3.6), or the relay's own
    /// error where no server answered, `X-Petrel; connect to …: Connection refused` (see ``AttemptResult``).
    /// Text without a diagnostic type is given the `smtp` type. Line breaks and other control characters in it are
    /// rendered as spaces.
    public var diagnosticCode: String?
    /// RFC 3464 §2.3.7 `Last-Attempt-Date`, in seconds since 1970.
    public var lastAttemptSeconds: Int64?
    /// RFC 3464 §2.3.8 `Will-Retry-Until`, in seconds since 1970: for a `delayed` recipient, when the
    /// relay will give up.
    public var willRetryUntilSeconds: Int64?

    public init(
        finalRecipient: String,
        originalRecipient: String? = nil,
        action: Action,
        status: EnhancedStatusCode,
        remoteMTA: String? = nil,
        diagnosticCode: String? = nil,
        lastAttemptSeconds: Int64? = nil,
        willRetryUntilSeconds: Int64? = nil
    ) {
        self.finalRecipient = finalRecipient
        self.originalRecipient = originalRecipient
        self.action = action
        self.status = status
        self.remoteMTA = remoteMTA
        self.diagnosticCode = diagnosticCode
        self.lastAttemptSeconds = lastAttemptSeconds
        self.willRetryUntilSeconds = willRetryUntilSeconds
    }
}
