/// The default log format, for people and `grep`:
///
///     2025-03-01T09:15:02.517Z info petrel: [Delivery] 65SHN2V1Q8K0TZ: to=<bob@x.test>, …, status=sent (250 Ok)
///     2025-03-01T09:15:03.001Z info petrel: [InboundServer] connection refused: not in client_networks client=192.0.2.7
///
/// The time is UTC. The message comes first, so a message's lines read like Postfix's; the logger's
/// metadata follows as `key=value`, quoted when the value has spaces. Line breaks inside a message are
/// written `\n`, so that one event is always one line.
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
        line.append(escapingLineBreaks(record.message))
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

    private static func escapingLineBreaks(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) else { return text }
        return text.replacingLineBreaks()
    }

    private static func quotedIfNeeded(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains { scalar in
            scalar == " " || scalar == "\"" || scalar == "=" || scalar.value < 0x20
        }
        guard needsQuotes else { return value }
        var quoted = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": quoted.append("\\\"")
            case "\\": quoted.append("\\\\")
            case "\n": quoted.append("\\n")
            case "\r": quoted.append("\\r")
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        quoted.append("\"")
        return quoted
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
