import Foundation

/// An operator's action on queued messages: `petrel queue hold|release|retry|delete|bounce`. See
/// ``QueueStore/perform(_:on:requestedBy:now:report:)`` for what each does, and to a message being delivered.
public enum QueueAction: Sendable, Equatable {
    /// Never delivered nor expired until released.
    case hold
    /// Off hold; the pending recipients are due now.
    case release
    /// The pending recipients are due now.
    case retry
    /// Removed without a notification to the sender.
    case delete
    /// The pending recipients fail now with status 5.0.0 and the operator's reason, and a bounce (a
    /// delivery status notification) goes to the sender.
    case bounce(reason: String?, notification: SenderNotification)

    public var name: String {
        switch self {
        case .hold: "hold"
        case .release: "release"
        case .retry: "retry"
        case .delete: "delete"
        case .bounce: "bounce"
        }
    }

    /// `delete` and `bounce` of a recipient being delivered wait for that attempt to end (`pending_action`).
    var waitsForAttempts: Bool {
        switch self {
        case .delete, .bounce: true
        case .hold, .release, .retry: false
        }
    }

    /// `hold` and `release` act on messages; the others on the recipients a filter selects.
    var actsOnRecipients: Bool {
        switch self {
        case .hold, .release: false
        case .retry, .delete, .bounce: true
        }
    }
}

/// The messages an action is for: named by queue id, or every message that matches a filter (the
/// empty filter is the whole queue, `--all`).
public enum QueueSelection: Sendable, Equatable {
    case queueIDs([String])
    case matching(QueueFilter)
}

/// What an action did to one message. Its JSON form is a stable shape: every key is written, `null`
/// or `[]` when empty.
public struct QueueActionResult: Encodable, Sendable, Equatable {
    public enum Outcome: String, Encodable, Sendable, Equatable {
        case held
        case alreadyHeld = "already_held"
        case released
        case notHeld = "not_held"
        case retried
        /// `retry` of a message on hold: nothing done; release it.
        case onHold = "on_hold"
        /// `retry` when every selected pending recipient is being delivered already.
        case inDelivery = "in_delivery"
        case deleted
        /// `delete` of recipients that are all being delivered: done when the attempt ends.
        case deletePending = "delete_pending"
        case bounced
        /// `bounce` of recipients that are all being delivered: done when the attempt ends.
        case bouncePending = "bounce_pending"
        /// No selected recipient is still to be delivered.
        case nothingPending = "nothing_pending"
        case notFound = "not_found"
    }

    public var queueID: String
    public var outcome: Outcome
    /// The recipients acted on now.
    public var recipients: [String]
    /// Recipients that were being delivered at that moment. For `delete` and `bounce`, the action waits
    /// for that attempt to end and applies unless it delivered them; for `hold`, that attempt goes on.
    public var inDelivery: [String]
    /// The queue id of the bounce queued for the sender.
    public var notification: String?
    /// The message has left the queue.
    public var isRemoved: Bool

    public init(queueID: String, outcome: Outcome, recipients: [String] = [], inDelivery: [String] = [],
                notification: String? = nil, isRemoved: Bool = false) {
        self.queueID = queueID
        self.outcome = outcome
        self.recipients = recipients
        self.inDelivery = inDelivery
        self.notification = notification
        self.isRemoved = isRemoved
    }

    enum CodingKeys: String, CodingKey {
        case queueID = "queue_id"
        case outcome = "result"
        case recipients
        case inDelivery = "in_delivery"
        case notification
        case isRemoved = "removed"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(queueID, forKey: .queueID)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(recipients, forKey: .recipients)
        try container.encode(inDelivery, forKey: .inDelivery)
        try container.encode(notification, forKey: .notification)
        try container.encode(isRemoved, forKey: .isRemoved)
    }
}
