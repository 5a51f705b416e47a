/// The first part of a delivery status notification: an account for people of what happened to each
/// recipient, with the remote server's reply, and for a delay how long the relay will keep trying
/// (RFC 6522 §3, RFC 3464 §1.2). Lines are wrapped at 76 octets, continuation lines indented.
enum DSNExplanation {
    static let width = 76
    static let indent = "    "

    static func text(for notification: DeliveryStatusNotification) -> String {
        let host = DSNText.untyped(notification.reportingMTA)
        var text = paragraph("This is the mail system at host \(host).")
        let groups: [(RecipientDeliveryStatus.Action, String)] = [
            (.failed, "Your message could not be delivered to the recipients below. This is a permanent error: the mail system has given up on them."),
            (.delayed, "Your message has not yet been delivered to the recipients below. It is still in the queue and the mail system will keep trying; you do not need to send it again."),
            (.delivered, "Your message was delivered to the recipients below."),
            (.relayed, "Your message was passed on to the recipients below through a mail system that does not send delivery reports, so you may not hear about them again."),
            (.expanded, "Your message was delivered to the recipients below, which are mailing lists or aliases; it has been passed on to their members."),
        ]
        for (action, introduction) in groups {
            let recipients = notification.recipients.filter { $0.action == action }
            guard !recipients.isEmpty else { continue }
            text += paragraph(introduction)
            for recipient in recipients {
                text += entry(for: recipient, reportSeconds: notification.dateSeconds)
            }
        }
        let attachment = notification.returnsFullMessage
            ? "Your message is attached."
            : "The header section of your message is attached."
        text += paragraph("\(attachment) If you need help, please write to the postmaster of \(host) and include this report.")
        text.removeLast()  // the last empty line ("\r\n" is one Character): the part ends with its last line
        return text
    }

    /// One recipient: `<user@example.com>: host mx.example.com said: 550 5.1.1 User unknown`.
    static func entry(for recipient: RecipientDeliveryStatus, reportSeconds: Int64) -> String {
        let address = "<\(DSNText.bareAddress(DSNText.untyped(recipient.finalRecipient)))>"
        let host = recipient.remoteMTA.map(DSNText.untyped).flatMap { $0.isEmpty ? nil : $0 }
        let reply = recipient.diagnosticCode.map(DSNText.untyped).flatMap { $0.isEmpty ? nil : $0 }
        var reason: String
        switch (host, reply) {
        case let (host?, reply?):
            reason = "host \(host) said: \(reply)"
        case let (nil, reply?):
            reason = reply
        case let (host, nil):
            switch recipient.action {
            case .failed, .delayed:
                reason = host.map { "host \($0): " } ?? ""
                reason += recipient.status.description
                if let description = recipient.status.statusDescription { reason += " (\(description))" }
            case .delivered, .relayed, .expanded:
                reason = recipient.action.rawValue + (host.map { " via host \($0)" } ?? "")
            }
        }
        if let reply, isVerdictApart(recipient, fromDiagnostic: reply), let description = recipient.status.statusDescription {
            // The status is the relay's verdict, the diagnostic the last evidence: `delivery time expired
            // (5.4.7); last, host mx.example said: 451 4.3.0 Try later`.
            reason = "\(description) (\(recipient.status)); last, \(reason)"
        }
        var text = DSNText.wrap("\(address): \(reason)", width: width, continuation: indent) + "\r\n"
        if recipient.action == .delayed, let until = recipient.willRetryUntilSeconds {
            var retry = "The mail system will keep trying until \(InternetDate.format(secondsSince1970: until))"
            if until > reportSeconds { retry += ", for another \(duration(until - reportSeconds))" }
            text += DSNText.wrap(indent + retry + ".", width: width, continuation: indent) + "\r\n"
        }
        return text + "\r\n"
    }

    /// Whether the status says more than the diagnostic: the relay gave up at expiry (X.4.7), or the
    /// diagnostic is a reply of another class than the status (a `4xx` quoted for a failure).
    private static func isVerdictApart(_ recipient: RecipientDeliveryStatus, fromDiagnostic reply: String) -> Bool {
        if recipient.action == .failed && recipient.status.subject == 4 && recipient.status.detail == 7 { return true }
        guard let replyClass = reply.first?.wholeNumberValue, reply.prefix(3).allSatisfy(\.isNumber) else { return false }
        return replyClass != recipient.status.codeClass
    }

    /// `4 days 23 hours`, `1 hour`, `25 minutes`: the two largest units.
    static func duration(_ seconds: Int64) -> String {
        func count(_ value: Int64, _ unit: String) -> String { "\(value) \(unit)\(value == 1 ? "" : "s")" }
        let days = seconds / 86400
        let hours = seconds % 86400 / 3600
        let minutes = seconds % 3600 / 60
        if days > 0 { return count(days, "day") + (hours > 0 ? " " + count(hours, "hour") : "") }
        if hours > 0 { return count(hours, "hour") + (minutes > 0 ? " " + count(minutes, "minute") : "") }
        if minutes > 0 { return count(minutes, "minute") }
        return "less than a minute"
    }

    private static func paragraph(_ text: String) -> String {
        DSNText.wrap(text, width: width, continuation: "") + "\r\n\r\n"
    }
}
