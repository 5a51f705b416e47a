import Foundation

/// The queue at a glance, for `petrel queue stats`: what is waiting, what is stuck where and why, and
/// since when. Its JSON form is a stable shape: every key is written, `null` when empty.
public struct QueueStatistics: Encodable, Sendable, Equatable {
    /// Messages, each counted once: `held` when on hold; otherwise `deferred` when a recipient has been
    /// tried and deferred; otherwise `queued` (waiting for a first attempt).
    public struct Messages: Encodable, Sendable, Equatable {
        public var total: Int
        public var queued: Int
        public var deferred: Int
        public var held: Int
    }

    /// Recipients by state, and how many are being delivered right now (leased).
    public struct Recipients: Encodable, Sendable, Equatable {
        public var queued: Int
        public var deferred: Int
        public var delivered: Int
        public var failed: Int
        public var inDelivery: Int

        enum CodingKeys: String, CodingKey {
            case queued, deferred, delivered, failed
            case inDelivery = "in_delivery"
        }
    }

    public struct DomainCount: Encodable, Sendable, Equatable {
        public var domain: String
        public var recipients: Int
    }

    public struct ErrorCount: Encodable, Sendable, Equatable {
        public var lastReply: String
        public var recipients: Int

        enum CodingKeys: String, CodingKey {
            case lastReply = "last_reply"
            case recipients
        }
    }

    public struct Oldest: Encodable, Sendable, Equatable {
        public var queueID: String
        public var arrivedAt: Date
        public var ageSeconds: Int

        enum CodingKeys: String, CodingKey {
            case queueID = "queue_id"
            case arrivedAt = "arrived_at"
            case ageSeconds = "age_seconds"
        }
    }

    public var messages: Messages
    public var recipients: Recipients
    /// The destinations with the most deferred recipients, most first.
    public var topDeferredDomains: [DomainCount]
    /// The most common last replies of deferred recipients, most first.
    public var topDeferredErrors: [ErrorCount]
    public var oldestMessage: Oldest?
    /// Octets stored: trace headers and text of every message.
    public var totalBytes: Int
    /// Operator actions waiting for an attempt under way to end.
    public var pendingActions: Int

    enum CodingKeys: String, CodingKey {
        case messages, recipients
        case topDeferredDomains = "top_deferred_domains"
        case topDeferredErrors = "top_deferred_errors"
        case oldestMessage = "oldest_message"
        case totalBytes = "total_bytes"
        case pendingActions = "pending_actions"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(messages, forKey: .messages)
        try container.encode(recipients, forKey: .recipients)
        try container.encode(topDeferredDomains, forKey: .topDeferredDomains)
        try container.encode(topDeferredErrors, forKey: .topDeferredErrors)
        try container.encode(oldestMessage, forKey: .oldestMessage)
        try container.encode(totalBytes, forKey: .totalBytes)
        try container.encode(pendingActions, forKey: .pendingActions)
    }
}
