/// One recipient's delivery attempt, as the delivery policy judged it:
///
///     65SKQ3DVV11NSC: to=<bob@example.com>, relay=mx1.example.com[192.0.2.10]:25, delay=0.4, attempts=1, tls=TLSv1.3, dsn=2.0.0, status=sent (250 2.0.0 Ok)
public struct DeliveryAttemptEvent: Sendable, Equatable {
    /// What became of the recipient.
    public enum Status: String, Sendable {
        case sent, deferred, bounced, expired
    }

    /// What the attempt ended with: the server's reply, or an error of the relay's own where no server
    /// answered.
    public enum Result: Sendable, Equatable {
        /// A server's reply, and the host that gave it (`host[address]:port`).
        case reply(String, relay: String)
        case localError(String)
    }

    public var queueID: String
    public var recipient: String
    /// The DSN ORCPT parameter as given (`rfc822;bob@example.com`), if any.
    public var originalRecipient: String?
    public var result: Result
    /// Seconds since the message arrived.
    public var delay: Double
    /// Attempts made for this recipient, this one included.
    public var attempts: Int
    /// The TLS version of the connection, if it used TLS.
    public var tls: String?
    /// The verdict's status code (`2.0.0`), whose class agrees with `status`.
    public var dsn: String
    public var status: Status

    public init(
        queueID: String, recipient: String, originalRecipient: String? = nil, result: Result, delay: Double, attempts: Int,
        tls: String? = nil, dsn: String, status: Status
    ) {
        self.queueID = queueID
        self.recipient = recipient
        self.originalRecipient = originalRecipient
        self.result = result
        self.delay = delay
        self.attempts = attempts
        self.tls = tls
        self.dsn = dsn
        self.status = status
    }

    /// `relay=`: the host that answered, `none` when none did.
    public var relay: String {
        if case .reply(_, let relay) = result { relay } else { "none" }
    }

    /// The text in parentheses (JSON `reply`): the server's own words, or `local error: …`, after
    /// `expired after N attempts; last: ` when the recipient expired.
    public var reply: String {
        var text = switch result {
        case .reply(let reply, _): reply
        case .localError(let error): "local error: " + error
        }
        if status == .expired { text = "expired after \(attempts) attempts; last: " + text }
        return text
    }
}

/// A next hop that did not carry the message, while the attempt went on:
///
///     65SHN2V1Q8K0TZ: mx1.x.test[192.0.2.1]:25 cannot take the message: 554 5.6.7 SMTPUTF8 not offered
///     65SHN2V1Q8K0TZ: TLS handshake with mx1.x.test[192.0.2.1]:25 failed (certificate expired); retrying in plaintext
public struct HopEvent: Sendable, Equatable {
    public enum Kind: Sendable {
        /// The hop lacks what the message needs (8BITMIME, SMTPUTF8): the next one is tried.
        case cannotTakeMessage
        /// An opportunistic TLS handshake failed: the same host is tried in plaintext (RFC 7435 §4).
        case tlsFallback
    }

    public var queueID: String
    public var kind: Kind
    /// `host[address]:port`.
    public var relay: String
    /// The reply or error that says why.
    public var reply: String

    public init(queueID: String, kind: Kind, relay: String, reply: String) {
        self.queueID = queueID
        self.kind = kind
        self.relay = relay
        self.reply = reply
    }
}

/// A notification made for a message's sender, itself a message in the queue:
///
///     65SKQ3DVV11NSE: sender non-delivery notification: 65SKQ3DVV11NSF
public struct SenderNotificationEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A DSN for failed recipients (a bounce).
        case failure
        case delay
        case success
    }

    /// The message the notification reports on.
    public var reportedQueueID: String
    public var kind: Kind
    /// The notification's own queue id.
    public var notificationQueueID: String

    public init(reportedQueueID: String, kind: Kind, notificationQueueID: String) {
        self.reportedQueueID = reportedQueueID
        self.kind = kind
        self.notificationQueueID = notificationQueueID
    }
}
