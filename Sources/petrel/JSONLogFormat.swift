import LogEvents

/// `[log] format = "json"`: one JSON object per line, for log pipelines.
///
///     {"ts":"2025-03-01T09:15:02.517Z","level":"info","label":"petrel","source":"Delivery",
///      "msg":"65SHN2V1Q8K0TZ: to=<bob@x.test>, relay=…, status=sent (250 Ok)",
///      "event":"delivery_attempt","queue_id":"65SHN2V1Q8K0TZ","to":"bob@x.test",…,"status":"sent","reply":"250 Ok"}
///
/// Every value is a string. After the fixed fields come a relay event's fields (``fields(_:)``, rendered
/// from the event, never parsed from `msg`), then the logger's metadata (flattened, see
/// `LogRecord.flatMetadata`). A key never appears twice; metadata that would take a fixed or an event's
/// field name is written as `meta.<key>`.
enum JSONLogFormat {
    static let fixedKeys: Set<String> = ["ts", "level", "label", "source", "msg"]

    static func line(_ record: LogRecord) -> String {
        var line = "{"
        line.reserveCapacity(128 + record.message.utf8.count * 2)
        var used = fixedKeys
        var isFirst = true
        func field(_ key: String, _ value: String) {
            if !isFirst { line.append(",") }
            isFirst = false
            appendString(key, to: &line)
            line.append(":")
            appendString(value, to: &line)
        }
        field("ts", record.timestamp.rfc3339)
        field("level", record.level.rawValue)
        field("label", record.label)
        field("source", record.source)
        if let event = record.event {
            field("msg", HumanLogFormat.message(event))
            for (key, value) in fields(event) where used.insert(key).inserted {
                field(key, value)
            }
        } else {
            field("msg", record.message)
        }
        for (key, value) in record.metadata.isEmpty ? [] : record.flatMetadata {
            let name = used.contains(key) ? "meta.\(key)" : key
            guard used.insert(name).inserted else { continue }
            field(name, value)
        }
        line.append("}")
        return line
    }

    /// An event's fields, in the operator's vocabulary (Postfix's keys): each value as the event holds
    /// it, a remote server's words included, with nothing escaped but what JSON escapes.
    static func fields(_ event: RelayEvent) -> [(key: String, value: String)] {
        var fields: [(key: String, value: String)] = [("event", name(event))]
        func add(_ key: String, _ value: String?) {
            if let value { fields.append((key, value)) }
        }
        add("queue_id", event.queueID)
        switch event {
        case .messageAccepted(let event):
            add("from", event.sender)
            add("size", String(event.size))
            add("nrcpt", String(event.recipientCount))
            add("client", event.client)
            add("helo", event.helo)
            add("sasl_username", event.saslUsername)
            add("tls", event.tls)
            add("status", "queued")
        case .messageRefused(let event):
            add("status", "refused")
            add("reply", event.reply)
            add("error", event.error)
        case .deliveryAttempt(let event):
            add("to", event.recipient)
            add("orcpt", event.originalRecipient)
            add("relay", event.relay)
            add("delay", DeliveryAttemptFormat.delay(event.delay))
            add("attempts", String(event.attempts))
            add("tls", event.tls)
            add("dsn", event.dsn)
            add("status", event.status.rawValue)
            add("reply", event.reply)
        case .hop(let event):
            add("relay", event.relay)
            add("reply", event.reply)
        case .senderNotification(let event):
            add("notification", event.kind.rawValue)
            add("notification_queue_id", event.notificationQueueID)
        case .notificationDiscarded, .messageRemoved:
            break
        case .operatorAction(let event):
            add("action", event.action)
            add("operator", event.operatorName)
            add("reason", event.reason)
            if !event.recipients.isEmpty { add("recipients", event.recipients.joined(separator: ",")) }
        case .session(let event):
            add("client", event.client)
            switch event.kind {
            case .refusedByClientNetworks, .refusedTooManyConnections: break
            case .timedOut(let isInData): add("while", isInData ? "DATA" : "commands")
            case .tlsHandshakeFailed(let reason): add("reason", reason)
            case .messageRefused(let reply): add("reply", reply)
            case .authenticated(let user): add("user", user)
            case .authenticationFailed(let user), .authenticationThrottled(let user), .authenticationUnavailable(let user):
                add("user", user)
            }
        }
        return fields
    }

    /// The `event` field: what kind of line this is.
    private static func name(_ event: RelayEvent) -> String {
        switch event {
        case .messageAccepted: "message_accepted"
        case .messageRefused: "message_refused"
        case .deliveryAttempt: "delivery_attempt"
        case .hop(let hop): hop.kind == .cannotTakeMessage ? "hop_refused" : "tls_fallback"
        case .senderNotification: "sender_notification"
        case .notificationDiscarded: "notification_discarded"
        case .messageRemoved: "message_removed"
        case .operatorAction: "operator_action"
        case .session(let session):
            switch session.kind {
            case .refusedByClientNetworks, .refusedTooManyConnections: "connection_refused"
            case .timedOut: "timeout"
            case .tlsHandshakeFailed: "tls_failed"
            case .messageRefused: "message_rejected"
            case .authenticated: "auth_ok"
            case .authenticationFailed: "auth_failed"
            case .authenticationThrottled: "auth_throttled"
            case .authenticationUnavailable: "auth_unavailable"
            }
        }
    }

    /// A JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped; other
    /// characters, non-ASCII included, as they are.
    static func appendString(_ text: String, to line: inout String) {
        line.append("\"")
        var plainStart = text.unicodeScalars.startIndex
        var index = plainStart
        let scalars = text.unicodeScalars
        while index != scalars.endIndex {
            let scalar = scalars[index]
            let escape: String?
            switch scalar {
            case "\"": escape = "\\\""
            case "\\": escape = "\\\\"
            case "\n": escape = "\\n"
            case "\r": escape = "\\r"
            case "\t": escape = "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                escape = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: escape = nil
            }
            if let escape {
                line.unicodeScalars.append(contentsOf: scalars[plainStart..<index])
                line.append(escape)
                plainStart = scalars.index(after: index)
            }
            index = scalars.index(after: index)
        }
        line.unicodeScalars.append(contentsOf: scalars[plainStart..<index])
        line.append("\"")
    }
}
