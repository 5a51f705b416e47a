import Foundation
import MailQueue
import SMTPProtocol

/// How queue contents are printed: tables and details for people, a stable JSON shape for scripts.
enum QueueOutput {
    static func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Bytes as they are, so that 8-bit text reaches the terminal unchanged.
    static func write(_ data: Data) {
        fflush(nil)  // after what `print` has buffered (every output stream: `stdout` is a global variable)
        FileHandle.standardOutput.write(data)
        if data.last != UInt8(ascii: "\n") { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }

    static func timestamp(_ date: Date) -> String {
        InternetDate.rfc3339(secondsSince1970: Int64(date.timeIntervalSince1970.rounded(.down)))
    }

    /// `queue show --json`: the message's keys, plus its headers and (with `--body`) its whole text.
    struct MessageDetails: Encodable {
        var message: QueuedMessage
        var headers: String
        var body: String?

        enum CodingKeys: String, CodingKey {
            case headers, body
        }

        func encode(to encoder: any Encoder) throws {
            try message.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(headers, forKey: .headers)
            try container.encode(body, forKey: .body)
        }
    }

    /// One line per message: queue id, arrival, size, next attempt, sender and recipients with their
    /// state, and the last error cut short.
    static func table(_ messages: [QueuedMessage], limit: Int) -> String {
        var lines = ["QUEUE ID        ARRIVED                   SIZE  NEXT ATTEMPT          SENDER -> RECIPIENTS (STATE)  LAST ERROR"]
        for message in messages {
            let size = String(message.size)
            let pending = message.recipients.filter { $0.state == "queued" || $0.state == "deferred" }
            let next: String
            if message.isHeld {
                next = "held"
            } else if pending.contains(where: \.isInDelivery) {
                next = "in delivery"
            } else if let due = pending.map(\.nextAttemptAt).min() {
                next = timestamp(due)
            } else {
                next = "-"
            }
            var shown = message.recipients.prefix(3).map { "<\($0.address)> \($0.state)" }.joined(separator: ", ")
            if message.recipients.count > 3 { shown += " +\(message.recipients.count - 3) more" }
            var line = "\(message.queueID)  \(timestamp(message.arrivedAt))  "
                + String(repeating: " ", count: max(0, 8 - size.count)) + size + "  "
                + next.padding(toLength: max(next.count, 20), withPad: " ", startingAt: 0) + "  "
                + "<\(message.sender)> -> \(shown)"
            let last = pending.filter { lastResult(of: $0) != nil }.max { ($0.lastAttemptAt ?? .distantPast) < ($1.lastAttemptAt ?? .distantPast) }
            if let last, let text = lastResult(of: last) { line += "  " + cut(text, to: 60) }
            lines.append(line)
        }
        var footer = "-- \(messages.count) message\(messages.count == 1 ? "" : "s")"
        if messages.count == limit, let last = messages.last {
            footer += "; more with --after \(last.queueID)"
        }
        lines.append(footer)
        return lines.joined(separator: "\n")
    }

    /// A recipient's last result in the table: the reply, or the local error marked as such.
    static func lastResult(of recipient: QueuedMessage.Recipient) -> String? {
        recipient.lastError.map { "(local) \($0)" } ?? recipient.lastReply
    }

    /// One line of at most `length` characters: a longer text ends at the last word that fits, then `…`
    /// (a single word longer than that is cut inside).
    static func cut(_ text: String, to length: Int) -> String {
        let line = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        guard line.count > length else { return line }
        let room = line.prefix(length - 1)
        let words = line[room.endIndex] == " " ? room : room[..<(room.lastIndex(of: " ") ?? room.endIndex)]
        var kept = words.isEmpty ? room : words
        while let last = kept.last, last == " " || last == "," || last == ";" { kept = kept.dropLast() }
        return String(kept) + "…"
    }

    static func details(_ message: QueuedMessage) -> String {
        var lines = [
            "queue_id:    \(message.queueID)",
            "from:        <\(message.sender)>",
            "size:        \(message.size)",
            "arrived:     \(timestamp(message.arrivedAt))",
            "expires:     \(timestamp(message.expiresAt))",
            "client:      \(message.clientHelo) [\(message.clientAddress)] with \(message.protocol)",
        ]
        if let user = message.authenticatedUser { lines.append("auth_user:   \(user)") }
        if let body = message.bodyType { lines.append("body:        \(body)") }
        if message.isSMTPUTF8 { lines.append("smtputf8:    yes") }
        if let ret = message.dsnReturn { lines.append("dsn_ret:     \(ret)") }
        if let envid = message.dsnEnvelopeID { lines.append("dsn_envid:   \(envid)") }
        if message.isHeld { lines.append("held:        yes") }
        lines.append("recipients:")
        for recipient in message.recipients {
            var line = "  <\(recipient.address)> \(recipient.state), attempts=\(recipient.attempts)"
            if recipient.state == "queued" || recipient.state == "deferred" {
                line += recipient.isInDelivery ? ", in delivery now" : ", next=\(timestamp(recipient.nextAttemptAt))"
            }
            if let last = recipient.lastAttemptAt { line += ", last=\(timestamp(last))" }
            if let notify = recipient.notify { line += ", notify=\(notify)" }
            if let orcpt = recipient.originalRecipient { line += ", orcpt=\(orcpt)" }
            if let action = recipient.pendingAction { line += ", \(action) pending (when the attempt ends)" }
            lines.append(line)
            // A server's reply names the server; the relay's own error is never shown as a reply.
            if let error = recipient.lastError {
                lines.append("      last error (local): \(error)")
            } else if let reply = recipient.lastReply {
                lines.append("      last reply: \(reply)\(recipient.lastRelay.map { " (from \($0))" } ?? "")")
            }
        }
        return lines.joined(separator: "\n")
    }

    static func statistics(_ statistics: QueueStatistics, now: Date) -> String {
        let messages = statistics.messages
        let recipients = statistics.recipients
        var lines = [
            "messages:    \(messages.total) (queued \(messages.queued), deferred \(messages.deferred), held \(messages.held))",
            "recipients:  queued \(recipients.queued), deferred \(recipients.deferred), delivered \(recipients.delivered), "
                + "failed \(recipients.failed); in delivery now \(recipients.inDelivery)",
            "size:        \(statistics.totalBytes) bytes",
        ]
        if let oldest = statistics.oldestMessage {
            lines.append("oldest:      \(oldest.queueID), arrived \(timestamp(oldest.arrivedAt)), \(age(oldest.ageSeconds)) ago")
        } else {
            lines.append("oldest:      -")
        }
        if statistics.pendingActions > 0 {
            lines.append("pending:     \(statistics.pendingActions) delete/bounce waiting for attempts under way")
        }
        lines.append("top deferred domains (recipients):")
        if statistics.topDeferredDomains.isEmpty { lines.append("  -") }
        for entry in statistics.topDeferredDomains {
            lines.append(String(repeating: " ", count: max(2, 8 - String(entry.recipients).count)) + "\(entry.recipients)  \(entry.domain)")
        }
        lines.append("top deferred errors (recipients):")
        if statistics.topDeferredErrors.isEmpty { lines.append("  -") }
        for entry in statistics.topDeferredErrors {
            lines.append(String(repeating: " ", count: max(2, 8 - String(entry.recipients).count)) + "\(entry.recipients)  \(cut(entry.lastReply, to: 100))")
        }
        return lines.joined(separator: "\n")
    }

    /// `3d 4h`, `2h 5m`, `40s`.
    static func age(_ seconds: Int) -> String {
        let days = seconds / 86400, hours = seconds % 86400 / 3600, minutes = seconds % 3600 / 60
        if days > 0 { return "\(days)d \(hours)h" }
        if hours > 0 { return "\(hours)h \(minutes)m" }
        if minutes > 0 { return "\(minutes)m \(seconds % 60)s" }
        return "\(seconds)s"
    }
}
