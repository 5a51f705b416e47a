/// The header section of a message or of a body part (RFC 5322 §2.2, RFC 2045 §3), as ranges into the
/// text: each field spans its first line and its folded continuation lines, CRLFs included, so fields are
/// copied, dropped or folded without being rebuilt.
struct MIMEHeaderSection {
    struct Field {
        /// The field name, lowercased.
        var name: [UInt8]
        /// The whole field, continuation lines and the last CRLF included.
        var range: Range<Int>
    }

    var fields: [Field] = []
    /// Where the body starts: after the empty line, or the end of the entity when there is none.
    var bodyStart: Int

    /// Reads the fields at the start of `range` of `text`, up to the empty line that ends them.
    init(_ text: [UInt8], in range: Range<Int>) {
        var index = range.lowerBound
        bodyStart = range.upperBound
        while index < range.upperBound {
            let lineEnd = Self.endOfLine(text, from: index, before: range.upperBound)
            if Self.isEmptyLine(text, index..<lineEnd) {
                bodyStart = lineEnd
                return
            }
            let isContinuation = text[index] == UInt8(ascii: " ") || text[index] == UInt8(ascii: "\t")
            if isContinuation, !fields.isEmpty {
                fields[fields.count - 1].range = fields[fields.count - 1].range.lowerBound..<lineEnd
            } else {
                var name: [UInt8] = []
                var cursor = index
                while cursor < lineEnd, text[cursor] != UInt8(ascii: ":"), text[cursor] > 32 {
                    name.append(text[cursor] | (text[cursor] >= 65 && text[cursor] <= 90 ? 0x20 : 0))
                    cursor += 1
                }
                fields.append(Field(name: name, range: index..<lineEnd))
            }
            index = lineEnd
        }
    }

    /// The index after the LF that ends the line starting at `start`, or `end`.
    static func endOfLine(_ text: [UInt8], from start: Int, before end: Int) -> Int {
        var index = start
        while index < end {
            if text[index] == UInt8(ascii: "\n") { return index + 1 }
            index += 1
        }
        return end
    }

    /// A line holding only its CRLF (or LF).
    static func isEmptyLine(_ text: [UInt8], _ line: Range<Int>) -> Bool {
        line.count == 1 && text[line.lowerBound] == UInt8(ascii: "\n")
            || line.count == 2 && text[line.lowerBound] == UInt8(ascii: "\r") && text[line.lowerBound + 1] == UInt8(ascii: "\n")
    }

    func field(_ name: String) -> Field? {
        let name = Array(name.utf8)
        return fields.first { $0.name == name }
    }

    /// The field's value after the colon, unfolded (RFC 5322 §2.2.3): CRLFs removed.
    func value(of name: String, in text: [UInt8]) -> [UInt8]? {
        guard let field = field(name), let colon = text[field.range].firstIndex(of: UInt8(ascii: ":")) else { return nil }
        return text[(colon + 1)..<field.range.upperBound].filter { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
    }
}
