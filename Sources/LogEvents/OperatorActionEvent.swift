/// An operator's action on one message, logged by the server for the CLI that made it:
///
///     65SHN2V1Q8K0TZ: removed by operator root (reason: spam run)
///     65SHN2V1Q8K0TZ: bounced <a@x.test> by operator root; <b@x.test> settled by the attempt under way
///     65SHN2V1Q8K0TZ: removed nothing by operator root; <b@x.test> left to a later request
public struct OperatorActionEvent: Sendable, Equatable {
    public var queueID: String
    /// `hold`, `release`, `retry`, `delete` or `bounce`.
    public var action: String
    /// The Unix user who ran the command.
    public var operatorName: String
    public var reason: String?
    /// Every recipient of the message was meant (queue ids, or a filter on messages only).
    public var isWholeMessage: Bool
    /// The recipients acted on (for `hold` and `release`, none: they act on the message).
    public var recipients: [String]
    /// `delete` and `bounce`: the recipients that were being delivered when the operator asked.
    public var inDelivery: [String]
    /// Of `inDelivery`, those a later `delete` or `bounce` took over before the attempt ended.
    public var handedOver: [String]

    public init(
        queueID: String, action: String, operatorName: String, reason: String?, isWholeMessage: Bool,
        recipients: [String], inDelivery: [String] = [], handedOver: [String] = []
    ) {
        self.queueID = queueID
        self.action = action
        self.operatorName = operatorName
        self.reason = reason
        self.isWholeMessage = isWholeMessage
        self.recipients = recipients
        self.inDelivery = inDelivery
        self.handedOver = handedOver
    }

    /// Recipients in delivery that the attempt under way delivered or failed before the action reached them.
    public var settledByAttempt: [String] {
        inDelivery.filter { !recipients.contains($0) && !handedOver.contains($0) }
    }

    /// Whether the line names the recipients acted on: not for `hold` and `release`, nor for a whole
    /// message reached whole.
    public var namesRecipients: Bool {
        action != "hold" && action != "release" && !(isWholeMessage && inDelivery.allSatisfy(recipients.contains))
    }
}
