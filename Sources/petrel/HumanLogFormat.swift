import LogEvents

/// The default log format, for people and `grep`:
///
///     2025-03-01T09:15:02.517Z info petrel: [Delivery] 65SHN2V1Q8K0TZ: to=<bob@x.test>, …, status=sent (250 Ok)
///     2025-03-01T09:15:03.001Z info petrel: [InboundServer] connection refused: not in client_networks client=192.0.2.7
///
/// The time is UTC. The message comes first, so a message's lines read like Postfix's; the logger's
/// metadata follows as `key=value`, quoted when the value has spaces. Line breaks inside a message are
/// written `\n`, so that one event is always one line.
///
/// A relay event (``RelayEvent``) is rendered here into its Postfix-style line (``message(_:)``). Text
/// that others chose (replies, EHLO names, addresses, reasons) is escaped so that it can neither end the
/// line nor pass for a field: control characters and backslashes as `\xHH`/`\\`, and besides, by where
/// the text stands, a space in a bare value (`helo=`), `<` and `>` in an address, an unbalanced `(` or `)`
/// in parentheses.
enum HumanLogFormat {
    static func line(_ record: LogRecord) -> String {
        var line = record.timestamp.rfc3339
        line.append(" ")
        line.append(record.level.rawValue)
        if !record.label.isEmpty {
            line.append(" ")
            line.append(record.label)
            line.append(":")
        }
        line.append(" [")
        line.append(record.source)
        line.append("] ")
        if let event = record.event {
            write(event, to: &line)
        } else {
            line.append(escapingLineBreaks(record.message))
        }
        if !record.metadata.isEmpty {
            for (key, value) in record.flatMetadata {
                line.append(" ")
                line.append(key)
                line.append("=")
                line.append(quotedIfNeeded(value))
            }
        }
        return line
    }

    /// The Postfix-style line of an event, as it follows the line's prefix (and as JSON's `msg`).
    static func message(_ event: RelayEvent) -> String {
        var line = ""
        write(event, to: &line)
        return line
    }

    private static func write(_ event: RelayEvent, to line: inout String) {
        if let queueID = event.queueID {
            line.append(queueID)
            line.append(": ")
        }
        switch event {
        case .messageAccepted(let event):
            line.append("from=")
            appendAddress(event.sender, to: &line)
            line.append(", size=\(event.size), nrcpt=\(event.recipientCount)")
            appendField("client", event.client, to: &line)
            appendField("helo", event.helo, to: &line)
            appendField("sasl_username", event.saslUsername, to: &line)
            appendField("tls", event.tls, to: &line)
            line.append(", status=queued")
        case .messageRefused(let event):
            line.append(event.stage == .spool ? "spool write failed" : "queue write failed")
            line.append(", status=refused (")
            appendParenthesized(event.reply, to: &line)
            line.append("): ")
            appendText(event.error, to: &line)
        case .deliveryAttempt(let event):
            line.append("to=")
            appendAddress(event.recipient, to: &line)
            appendField("relay", event.relay, to: &line)
            line.append(", delay=\(DeliveryAttemptFormat.delay(event.delay)), attempts=\(event.attempts)")
            appendField("tls", event.tls, to: &line)
            appendField("dsn", event.dsn, to: &line)
            line.append(", status=\(event.status.rawValue) (")
            appendParenthesized(event.reply, to: &line)
            line.append(")")
        case .hop(let event):
            switch event.kind {
            case .cannotTakeMessage:
                appendBare(event.relay, to: &line)
                line.append(" cannot take the message: ")
                appendText(event.reply, to: &line)
            case .tlsFallback:
                line.append("TLS handshake with ")
                appendBare(event.relay, to: &line)
                line.append(" failed (")
                appendParenthesized(event.reply, to: &line)
                line.append("); retrying in plaintext")
            }
        case .senderNotification(let event):
            let kind = switch event.kind {
            case .failure: "non-delivery"
            case .delay: "delay"
            case .success: "delivery"
            }
            line.append("sender \(kind) notification: \(event.notificationQueueID)")
        case .notificationDiscarded:
            line.append("a notification could not be delivered; it is discarded (no bounce of a bounce)")
        case .messageRemoved:
            line.append("removed")
        case .operatorAction(let event):
            writeOperatorAction(event, to: &line)
        case .session(let event):
            writeSession(event, to: &line)
        }
    }

    /// What happened, then `client=` and the rest as `key=value`, quoted like metadata.
    private static func writeSession(_ event: SessionEvent, to line: inout String) {
        var detail: (key: String, value: String)?
        switch event.kind {
        case .refusedByClientNetworks: line.append("connection refused: not in client_networks")
        case .refusedTooManyConnections: line.append("connection refused: too many connections")
        case .timedOut(let isInData):
            line.append("timeout")
            detail = ("while", isInData ? "DATA" : "commands")
        case .tlsHandshakeFailed(let reason):
            line.append("TLS handshake failed")
            detail = ("reason", reason)
        case .messageRefused(let reply):
            line.append("message refused")
            detail = ("reply", reply)
        case .authenticated(let user):
            line.append("AUTH ok")
            detail = ("user", user)
        case .authenticationFailed(let user):
            line.append("AUTH failed")
            detail = user.map { ("user", $0) }
        case .authenticationThrottled(let user):
            line.append("AUTH refused: too many failures from this address")
            detail = user.map { ("user", $0) }
        case .authenticationUnavailable(let user):
            line.append("AUTH refused: the password checks are saturated")
            detail = user.map { ("user", $0) }
        }
        line.append(" client=")
        line.append(quotedIfNeeded(event.client))
        if let detail {
            line.append(" \(detail.key)=")
            line.append(quotedIfNeeded(detail.value))
        }
    }

    /// Postfix's style (`postsuper: ID: removed`), after the queue id.
    private static func writeOperatorAction(_ event: OperatorActionEvent, to line: inout String) {
        let verb = switch event.action {
        case "hold": "held"
        case "release": "released"
        case "retry": "retried"
        case "delete": "removed"
        case "bounce": "bounced"
        default: event.action
        }
        line.append(verb)
        if event.namesRecipients {
            line.append(" ")
            if event.recipients.isEmpty { line.append("nothing") } else { appendAddressList(event.recipients, to: &line) }
        }
        line.append(" by operator ")
        appendBare(event.operatorName, to: &line)
        if let reason = event.reason, !reason.isEmpty {
            line.append(" (reason: ")
            appendParenthesized(reason, to: &line)
            line.append(")")
        }
        let settled = event.settledByAttempt
        if !settled.isEmpty {
            line.append("; ")
            appendAddressList(settled, to: &line)
            line.append(" settled by the attempt under way")
        }
        if !event.handedOver.isEmpty {
            line.append("; ")
            appendAddressList(event.handedOver, to: &line)
            line.append(" left to a later request")
        }
    }

    /// The first five as `<a> <b> …`, then `and N more`.
    private static func appendAddressList(_ addresses: [String], to line: inout String) {
        for (index, address) in addresses.prefix(5).enumerated() {
            if index > 0 { line.append(" ") }
            appendAddress(address, to: &line)
        }
        if addresses.count > 5 { line.append(" and \(addresses.count - 5) more") }
    }

    // MARK: - Escaping others' text

    /// Where a piece of text stands in the line, which says what else it must not contain.
    private enum Place {
        /// Free text at the end of a phrase: only control characters and backslashes are escaped.
        case text
        /// A value with no delimiters (`helo=…`): a space too, so it cannot run into `, key=`.
        case bare
        /// Inside `<…>`: the angle brackets too.
        case address
        /// Inside `(…)`: the parentheses that do not pair up, so the text ends where its `)` is.
        case parenthesized
    }

    /// `, key=value`, the value bare; nothing when there is none.
    private static func appendField(_ key: String, _ value: String?, to line: inout String) {
        guard let value else { return }
        line.append(", ")
        line.append(key)
        line.append("=")
        append(value, .bare, to: &line)
    }

    private static func appendText(_ text: String, to line: inout String) { append(text, .text, to: &line) }
    private static func appendBare(_ text: String, to line: inout String) { append(text, .bare, to: &line) }
    private static func appendParenthesized(_ text: String, to line: inout String) { append(text, .parenthesized, to: &line) }

    private static func appendAddress(_ address: String, to line: inout String) {
        line.append("<")
        append(address, .address, to: &line)
        line.append(">")
    }

    private static func append(_ text: String, _ place: Place, to line: inout String) {
        if isPlain(text, place) {
            line.append(text)
            return
        }
        let unpaired = place == .parenthesized ? unpairedParentheses(text) : []
        for (offset, scalar) in text.unicodeScalars.enumerated() {
            switch scalar {
            case "\\": line.append("\\\\")
            case " " where place == .bare: line.append("\\x20")
            case "<" where place == .address, ">" where place == .address:
                line.append("\\")
                line.unicodeScalars.append(scalar)
            case "(", ")":
                if unpaired.contains(offset) { line.append("\\") }
                line.unicodeScalars.append(scalar)
            case _ where isControl(scalar): appendEscaped(scalar, to: &line)
            default: line.unicodeScalars.append(scalar)
            }
        }
    }

    /// Nothing to escape: the common case (a reply's parentheses paired included), checked a byte at a
    /// time without decoding.
    private static func isPlain(_ text: String, _ place: Place) -> Bool {
        var depth = 0
        for byte in text.utf8 {
            switch byte {
            case 0..<0x20, 0x7F, 0x80..., UInt8(ascii: "\\"): return false
            case UInt8(ascii: " ") where place == .bare: return false
            case UInt8(ascii: "<") where place == .address, UInt8(ascii: ">") where place == .address: return false
            case UInt8(ascii: "(") where place == .parenthesized: depth += 1
            case UInt8(ascii: ")") where place == .parenthesized:
                guard depth > 0 else { return false }
                depth -= 1
            default: continue
            }
        }
        return depth == 0
    }

    /// The scalar offsets of the parentheses that have no partner: a `)` with no `(` open before it, and
    /// the `(` still open at the end.
    private static func unpairedParentheses(_ text: String) -> Set<Int> {
        var open: [Int] = []
        var unpaired: Set<Int> = []
        for (offset, scalar) in text.unicodeScalars.enumerated() {
            if scalar == "(" {
                open.append(offset)
            } else if scalar == ")" {
                if open.popLast() == nil { unpaired.insert(offset) }
            }
        }
        unpaired.formUnion(open)
        return unpaired
    }

    /// C0 and C1 controls, DEL, and the Unicode line and paragraph separators: what may end or rewrite a
    /// line on a terminal or in a log viewer.
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    private static func appendEscaped(_ scalar: Unicode.Scalar, to line: inout String) {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        if scalar.value <= 0xFF {
            line.append(hex.count == 1 ? "\\x0" : "\\x")
        } else {
            line.append("\\u")
        }
        line.append(hex)
    }

    // MARK: - Plain messages and metadata

    private static func escapingLineBreaks(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) else { return text }
        return text.replacingLineBreaks()
    }

    private static func quotedIfNeeded(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains { scalar in
            scalar == " " || scalar == "\"" || scalar == "=" || isControl(scalar)
        }
        guard needsQuotes else { return value }
        var quoted = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": quoted.append("\\\"")
            case "\\": quoted.append("\\\\")
            case "\n": quoted.append("\\n")
            case "\r": quoted.append("\\r")
            case _ where isControl(scalar): appendEscaped(scalar, to: &quoted)
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        quoted.append("\"")
        return quoted
    }
}

/// How a delivery attempt's delay is written, the same in both formats: seconds, one decimal.
enum DeliveryAttemptFormat {
    static func delay(_ seconds: Double) -> String {
        let tenths = (max(seconds, 0) * 10).rounded()
        let whole = Int(tenths / 10)
        return "\(whole).\(Int(tenths) - whole * 10)"
    }
}

private extension String {
    func replacingLineBreaks() -> String {
        var result = ""
        result.reserveCapacity(utf8.count + 8)
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": result.append("\\n")
            case "\r": result.append("\\r")
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
