import Logging

/// What the relay logs about a message or a client's session, as data: the log handler renders each
/// event twice, once as the Postfix-style human line and once as JSON fields, so neither is parsed back
/// out of the other.
///
/// An event rides in the metadata of one swift-log call (``Logger/log(_:_:source:file:function:line:)``)
/// under ``metadataKey``; it is made only when the level is logged.
public enum RelayEvent: Sendable, Equatable {
    /// A message committed to the queue (`status=queued`).
    case messageAccepted(MessageAcceptedEvent)
    /// A message the relay could not store (`status=refused`, `452 4.3.1`).
    case messageRefused(MessageRefusedEvent)
    /// One recipient's delivery attempt and what it meant (`status=sent|deferred|bounced|expired`).
    case deliveryAttempt(DeliveryAttemptEvent)
    /// A next hop skipped, or a TLS handshake given up for plaintext, during an attempt.
    case hop(HopEvent)
    /// A notification made for a message's sender.
    case senderNotification(SenderNotificationEvent)
    /// A notification that failed: it is discarded, never bounced.
    case notificationDiscarded(queueID: String)
    /// A message that left the queue, every recipient settled.
    case messageRemoved(queueID: String)
    /// An operator's action on one message (`petrel queue hold|release|retry|delete|bounce`).
    case operatorAction(OperatorActionEvent)
    /// A client's connection or session: refused, timed out, TLS, AUTH, a message refused.
    case session(SessionEvent)

    /// The metadata key an event travels under from the call to the log handler.
    public static let metadataKey = "petrel.event"

    /// The message whose line this is; `nil` for a session's.
    public var queueID: String? {
        switch self {
        case .messageAccepted(let event): event.queueID
        case .messageRefused(let event): event.queueID
        case .deliveryAttempt(let event): event.queueID
        case .hop(let event): event.queueID
        case .senderNotification(let event): event.reportedQueueID
        case .notificationDiscarded(let queueID), .messageRemoved(let queueID): queueID
        case .operatorAction(let event): event.queueID
        case .session: nil
        }
    }
}

extension RelayEvent: CustomStringConvertible {
    /// What a log handler that does not know events shows: the kind and the message.
    public var description: String {
        let kind = switch self {
        case .messageAccepted: "message accepted"
        case .messageRefused: "message refused"
        case .deliveryAttempt: "delivery attempt"
        case .hop: "next hop"
        case .senderNotification: "sender notification"
        case .notificationDiscarded: "notification discarded"
        case .messageRemoved: "message removed"
        case .operatorAction: "operator action"
        case .session: "session"
        }
        return "\(kind) \(queueID ?? "")"
    }
}

extension Logger {
    /// Logs `event` at `level`; the event is made only when that level is logged.
    public func log(
        _ level: Logger.Level, _ event: @autoclosure () -> RelayEvent,
        source: @autoclosure () -> String? = nil, file: String = #fileID, function: String = #function, line: UInt = #line
    ) {
        guard logLevel <= level else { return }
        let event = event()
        log(level: level, "\(event)", metadata: [RelayEvent.metadataKey: .stringConvertible(event)],
            source: source(), file: file, function: function, line: line)
    }
}

extension Logger.Metadata {
    /// The event this metadata carries, if any.
    public var relayEvent: RelayEvent? {
        guard case .stringConvertible(let value)? = self[RelayEvent.metadataKey] else { return nil }
        return value as? RelayEvent
    }
}
