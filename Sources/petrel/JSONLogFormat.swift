/// `[log] format = "json"`: one JSON object per line, for log pipelines.
///
///     {"ts":"2025-03-01T09:15:02.517Z","level":"info","label":"petrel","source":"Delivery",
///      "msg":"65SHN2V1Q8K0TZ: to=<bob@x.test>, relay=…, status=sent (250 Ok)",
///      "queue_id":"65SHN2V1Q8K0TZ","to":"bob@x.test",…,"status":"sent","reply":"250 Ok"}
///
/// Every value is a string. After the fixed fields come the logger's metadata (flattened, see
/// `LogRecord.flatMetadata`), then the Postfix-style fields of the message (`MessageLogFields`) that the
/// metadata does not already give. A key never appears twice; metadata that would take a fixed field's
/// name is written as `meta.<key>`.
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
        field("msg", record.message)
        for (key, value) in record.metadata.isEmpty ? [] : record.flatMetadata {
            let name = fixedKeys.contains(key) ? "meta.\(key)" : key
            guard used.insert(name).inserted else { continue }
            field(name, value)
        }
        for (key, value) in MessageLogFields.parse(record.message) where used.insert(key).inserted {
            field(key, value)
        }
        line.append("}")
        return line
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
