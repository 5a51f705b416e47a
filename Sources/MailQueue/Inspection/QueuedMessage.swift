import Foundation
import GRDB

/// A message as the queue holds it: the envelope and every recipient's state. Its JSON form is the
/// stable shape `petrel queue list --json` and `petrel queue show --json` print.
public struct QueuedMessage: Codable, Sendable, Equatable {
    public struct Recipient: Codable, Sendable, Equatable {
        public var address: String
        public var originalRecipient: String?
        public var notify: String?
        public var state: String
        public var attempts: Int
        public var nextAttemptAt: Date
        public var lastAttemptAt: Date?
        /// The last attempt's result when a server gave it: its reply, from `lastRelay` (`host[ip]:port`).
        public var lastReply: String?
        public var lastRelay: String?
        /// The last attempt's result when no server answered: the relay's own error (connection refused,
        /// a timeout, DNS, TLS). Never set together with `lastReply`.
        public var lastError: String?
        /// Leased by the delivery engine: an attempt is under way (or was, until its lease runs out).
        public var isInDelivery: Bool = false
        /// An operator's `delete` or `bounce` that waits for the attempt under way to end.
        public var pendingAction: String?

        enum CodingKeys: String, CodingKey {
            case address
            case originalRecipient = "original_recipient"
            case notify, state, attempts
            case nextAttemptAt = "next_attempt_at"
            case lastAttemptAt = "last_attempt_at"
            case lastReply = "last_reply"
            case lastRelay = "last_relay"
            case lastError = "last_error"
            case isInDelivery = "in_delivery"
            case pendingAction = "pending_action"
        }

        /// Every key is written, `null` when empty: the JSON shape is stable for scripts.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(address, forKey: .address)
            try container.encode(originalRecipient, forKey: .originalRecipient)
            try container.encode(notify, forKey: .notify)
            try container.encode(state, forKey: .state)
            try container.encode(attempts, forKey: .attempts)
            try container.encode(nextAttemptAt, forKey: .nextAttemptAt)
            try container.encode(lastAttemptAt, forKey: .lastAttemptAt)
            try container.encode(lastReply, forKey: .lastReply)
            try container.encode(lastRelay, forKey: .lastRelay)
            try container.encode(lastError, forKey: .lastError)
            try container.encode(isInDelivery, forKey: .isInDelivery)
            try container.encode(pendingAction, forKey: .pendingAction)
        }
    }

    public var queueID: String
    /// The reverse path, `""` for the null path.
    public var sender: String
    public var size: Int
    public var arrivedAt: Date
    public var expiresAt: Date
    public var clientAddress: String
    public var clientHelo: String
    public var `protocol`: String
    public var authenticatedUser: String?
    public var bodyType: String?
    public var isSMTPUTF8: Bool
    public var dsnReturn: String?
    public var dsnEnvelopeID: String?
    public var isHeld: Bool
    public var recipients: [Recipient]

    enum CodingKeys: String, CodingKey {
        case queueID = "queue_id"
        case sender, size
        case arrivedAt = "arrived_at"
        case expiresAt = "expires_at"
        case clientAddress = "client_address"
        case clientHelo = "client_helo"
        case `protocol`
        case authenticatedUser = "auth_user"
        case bodyType = "body_type"
        case isSMTPUTF8 = "smtputf8"
        case dsnReturn = "dsn_ret"
        case dsnEnvelopeID = "dsn_envid"
        case isHeld = "held"
        case recipients
    }

    /// Every key is written, `null` when empty: the JSON shape is stable for scripts.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(queueID, forKey: .queueID)
        try container.encode(sender, forKey: .sender)
        try container.encode(size, forKey: .size)
        try container.encode(arrivedAt, forKey: .arrivedAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(clientAddress, forKey: .clientAddress)
        try container.encode(clientHelo, forKey: .clientHelo)
        try container.encode(`protocol`, forKey: .protocol)
        try container.encode(authenticatedUser, forKey: .authenticatedUser)
        try container.encode(bodyType, forKey: .bodyType)
        try container.encode(isSMTPUTF8, forKey: .isSMTPUTF8)
        try container.encode(dsnReturn, forKey: .dsnReturn)
        try container.encode(dsnEnvelopeID, forKey: .dsnEnvelopeID)
        try container.encode(isHeld, forKey: .isHeld)
        try container.encode(recipients, forKey: .recipients)
    }

    init(row: Row, db: Database, now: Date = Date()) throws {
        queueID = row["queue_id"]
        sender = row["return_path"]
        size = row["size"]
        arrivedAt = Date(unixMilliseconds: row["arrived_at"])
        expiresAt = Date(unixMilliseconds: row["expires_at"])
        clientAddress = row["client_address"]
        clientHelo = row["client_helo"]
        `protocol` = row["protocol"]
        authenticatedUser = row["auth_user"]
        bodyType = row["body_type"]
        isSMTPUTF8 = row["is_smtputf8"]
        dsnReturn = row["dsn_ret"]
        dsnEnvelopeID = row["dsn_envid"]
        isHeld = row["is_held"]
        let messageID: Int64 = row["id"]
        let nowMS = now.unixMilliseconds
        recipients = try Row.fetchAll(db, sql: """
            SELECT r.*, p.action AS pending_action FROM recipient r LEFT JOIN pending_action p ON p.recipient_id = r.id
            WHERE r.message_id = ? ORDER BY r.id
            """, arguments: [messageID]).map { row in
            Recipient(
                address: row["address"],
                originalRecipient: row["orcpt"],
                notify: row["notify"],
                state: row["state"],
                attempts: row["attempts"],
                nextAttemptAt: Date(unixMilliseconds: row["next_attempt_at"]),
                lastAttemptAt: (row["last_attempt_at"] as Int64?).map(Date.init(unixMilliseconds:)),
                lastReply: row["last_reply"],
                lastRelay: row["last_relay"],
                lastError: row["last_error"],
                isInDelivery: row["lease_owner"] as String? != nil && (row["lease_expires_at"] as Int64? ?? 0) > nowMS,
                pendingAction: row["pending_action"]
            )
        }
    }
}
