/// A message committed to the queue:
///
///     65SHN2V1Q8K0TZ: from=<a@x.test>, size=1234, nrcpt=1, client=mail.x.test[192.0.2.7], helo=mail.x.test, status=queued
public struct MessageAcceptedEvent: Sendable, Equatable {
    public var queueID: String
    /// The reverse path; empty for the null sender `<>`.
    public var sender: String
    /// The stored size in octets, trace headers included.
    public var size: Int
    public var recipientCount: Int
    /// The client's forward-confirmed reverse DNS name, `nil` when it is not known (`unknown`).
    public var clientName: String?
    public var clientAddress: String
    /// The EHLO or HELO argument: the client's own words.
    public var helo: String
    public var saslUsername: String?
    /// The TLS version of the session, if it used TLS.
    public var tls: String?

    public init(
        queueID: String, sender: String, size: Int, recipientCount: Int, clientName: String?, clientAddress: String,
        helo: String, saslUsername: String? = nil, tls: String? = nil
    ) {
        self.queueID = queueID
        self.sender = sender
        self.size = size
        self.recipientCount = recipientCount
        self.clientName = clientName
        self.clientAddress = clientAddress
        self.helo = helo
        self.saslUsername = saslUsername
        self.tls = tls
    }

    /// Postfix's `client=name[address]`.
    public var client: String { "\(clientName ?? "unknown")[\(clientAddress)]" }
}

/// A message the relay could not store; the client got `452 4.3.1`:
///
///     65SHN2V1Q8K0TZ: queue write failed, status=refused (452 4.3.1): disk full
public struct MessageRefusedEvent: Sendable, Equatable {
    public enum Stage: Sendable {
        /// The body's spool file could not be written.
        case spool
        /// The queue's transaction failed.
        case queue
    }

    public var queueID: String
    public var stage: Stage
    /// The reply the client was given, `452 4.3.1`.
    public var reply: String
    /// Why, in the relay's words.
    public var error: String

    public init(queueID: String, stage: Stage, reply: String = "452 4.3.1", error: String) {
        self.queueID = queueID
        self.stage = stage
        self.reply = reply
        self.error = error
    }
}
