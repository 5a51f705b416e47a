/// The Postfix-style fields of a per-message log line, so that JSON logs can be filtered on them:
///
///     65SHN2V1Q8K0TZ: to=<bob@x.test>, relay=mx[127.0.0.3]:25, delay=0.1, attempts=1, dsn=2.0.0, status=sent (250 Ok)
///
/// gives `queue_id=65SHN2V1Q8K0TZ`, `to=bob@x.test`, `relay=mx[127.0.0.3]:25`, `delay=0.1`, `attempts=1`,
/// `dsn=2.0.0`, `status=sent` and `reply=250 Ok`.
///
/// The rules, Postfix's: a line about a message starts with its queue id (upper-case letters and digits)
/// and `: `; then come `key=value` items separated by `, `. An address value is in angle brackets (taken
/// without them; `<>` is the null sender, an empty value). A value may be followed by ` (text)`, the remote
/// server's reply or a comment, which may itself hold commas, `=` and nested parentheses; it becomes
/// `reply`. An item that is not `key=value` (free text such as `queue write failed`) is skipped. A line that
/// does not start with a queue id has no fields.
enum MessageLogFields {
    /// The fields in the order they appear; the first of a repeated key wins.
    static func parse(_ message: String) -> [(key: String, value: String)] {
        let text = Array(message.utf8)
        guard let idEnd = queueIDEnd(text) else { return [] }
        var fields: [(key: String, value: String)] = [("queue_id", String(decoding: text[..<idEnd], as: UTF8.self))]
        var seen: Set<String> = ["queue_id"]
        func add(_ key: String, _ value: ArraySlice<UInt8>) {
            guard seen.insert(key).inserted else { return }
            fields.append((key, String(decoding: value, as: UTF8.self)))
        }

        var index = idEnd + 2
        while index < text.count {
            guard let (key, valueStart) = keyAt(text, index) else {
                // Free text: skip this item.
                guard let next = nextSeparator(text, from: index) else { break }
                index = next + 2
                continue
            }
            var position = valueStart
            if position < text.count, text[position] == UInt8(ascii: "<") {
                guard let close = text[position...].firstIndex(of: UInt8(ascii: ">")) else { break }
                add(key, text[(position + 1)..<close])
                position = close + 1
            } else {
                let end = valueEnd(text, from: position)
                add(key, text[position..<end])
                position = end
            }
            if starts(text, at: position, with: " (") {
                let (reply, after) = parenthesized(text, from: position + 1)
                add("reply", reply)
                position = after
            }
            guard starts(text, at: position, with: ", ") else { break }
            index = position + 2
        }
        return fields
    }

    /// A queue id is 10 to 32 upper-case letters and digits, at least one a digit, followed by `: `.
    private static func queueIDEnd(_ text: [UInt8]) -> Int? {
        var index = 0
        while index < text.count, isUpperAlphanumeric(text[index]) { index += 1 }
        guard (10...32).contains(index), starts(text, at: index, with: ": "),
              text[..<index].contains(where: isDigit) else { return nil }
        return index
    }

    /// `key=` at `index`, the key being lower-case letters, digits and `_`, starting with a letter.
    private static func keyAt(_ text: [UInt8], _ index: Int) -> (String, Int)? {
        var end = index
        while end < text.count, isKeyByte(text[end]) { end += 1 }
        guard end > index, end < text.count, text[end] == UInt8(ascii: "="), isLowerLetter(text[index]) else { return nil }
        return (String(decoding: text[index..<end], as: UTF8.self), end + 1)
    }

    /// A plain value runs up to `, `, ` (` or the end.
    private static func valueEnd(_ text: [UInt8], from start: Int) -> Int {
        var index = start
        while index < text.count {
            if starts(text, at: index, with: ", ") || starts(text, at: index, with: " (") { return index }
            index += 1
        }
        return index
    }

    /// The text inside the parentheses opening at `open`, nesting counted, and the index after them. An
    /// unclosed one runs to the end (without a last `)`).
    private static func parenthesized(_ text: [UInt8], from open: Int) -> (ArraySlice<UInt8>, Int) {
        var depth = 0
        var index = open
        while index < text.count {
            switch text[index] {
            case UInt8(ascii: "("): depth += 1
            case UInt8(ascii: ")"):
                depth -= 1
                if depth == 0 { return (text[(open + 1)..<index], index + 1) }
            default: break
            }
            index += 1
        }
        let end = text.last == UInt8(ascii: ")") ? text.count - 1 : text.count
        return (text[(open + 1)..<max(open + 1, end)], text.count)
    }

    private static func nextSeparator(_ text: [UInt8], from start: Int) -> Int? {
        var index = start
        while index + 1 < text.count {
            if text[index] == UInt8(ascii: ","), text[index + 1] == UInt8(ascii: " ") { return index }
            index += 1
        }
        return nil
    }

    private static func starts(_ text: [UInt8], at index: Int, with prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard index + count <= text.count else { return false }
        let pointer = prefix.utf8Start
        for offset in 0..<count where text[index + offset] != pointer[offset] { return false }
        return true
    }

    private static func isUpperAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || isDigit(byte)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isLowerLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
    }

    private static func isKeyByte(_ byte: UInt8) -> Bool {
        isLowerLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "_")
    }
}
