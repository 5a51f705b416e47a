/// A tiny MIME reader for the tests, independent of the renderer: an entity's header fields (unfolded,
/// RFC 5322 §2.2.3) and body, and the parts of a multipart body (RFC 2046 §5.1.1).
struct MIMEEntity {
    var fields: [(name: String, value: String)]
    var body: [UInt8]

    init(_ bytes: [UInt8]) {
        let separator = Array("\r\n\r\n".utf8)
        let headerBytes: ArraySlice<UInt8>
        if bytes.starts(with: Array("\r\n".utf8)) {
            headerBytes = []
            body = Array(bytes.dropFirst(2))
        } else if let end = bytes.firstRange(of: separator) {
            headerBytes = bytes[..<(end.lowerBound + 2)]
            body = Array(bytes[end.upperBound...])
        } else {
            headerBytes = bytes[...]
            body = []
        }
        fields = []
        for line in MIMEEntity.split(Array(headerBytes), on: Array("\r\n".utf8)) where !line.isEmpty {
            let text = String(decoding: line, as: UTF8.self)
            if line[0] == UInt8(ascii: " ") || line[0] == UInt8(ascii: "\t"), !fields.isEmpty {
                fields[fields.count - 1].value += text
            } else if let colon = text.firstIndex(of: ":") {
                fields.append((String(text[..<colon]), String(text[text.index(after: colon)...])))
            }
        }
        fields = fields.map { ($0.name, String($0.value.drop(while: { $0 == " " || $0 == "\t" }))) }
    }

    init(_ text: String) { self.init(Array(text.utf8)) }

    /// The first field of that name, unfolded.
    func field(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The parts of a multipart body, `nil` unless it has an opening delimiter and a closing one.
    func parts(boundary: String) -> [MIMEEntity]? {
        // The CRLF in front of a delimiter belongs to it; the first one may open the body.
        let delimiter = Array("\r\n--\(boundary)".utf8)
        let pieces = MIMEEntity.split(Array("\r\n".utf8) + body, on: delimiter)
        guard pieces.count >= 3, pieces.last!.starts(with: Array("--".utf8)) else { return nil }
        var parts: [MIMEEntity] = []
        for piece in pieces.dropFirst().dropLast() {
            guard piece.starts(with: Array("\r\n".utf8)) else { return nil }
            parts.append(MIMEEntity(Array(piece.dropFirst(2))))
        }
        return parts
    }

    static func split(_ bytes: [UInt8], on separator: [UInt8]) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var rest = bytes[...]
        while let range = rest.firstRange(of: separator) {
            pieces.append(Array(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        pieces.append(Array(rest))
        return pieces
    }
}

/// Problems with a message's line structure: a CR or LF not in a CRLF pair, no CRLF at the end, or
/// a line longer than 998 octets (RFC 5322 §2.1.1, §2.3). Empty when there are none.
func lineProblems(_ bytes: [UInt8]) -> [String] {
    var problems: [String] = []
    if !bytes.isEmpty, !bytes.reversed().starts(with: [10, 13]) { problems.append("no CRLF at the end") }
    var lineLength = 0
    var lineNumber = 1
    for (index, byte) in bytes.enumerated() {
        switch byte {
        case 13:
            if index + 1 == bytes.count || bytes[index + 1] != 10 { problems.append("bare CR on line \(lineNumber)") }
        case 10:
            if index == 0 || bytes[index - 1] != 13 { problems.append("bare LF on line \(lineNumber)") }
            if lineLength > 998 { problems.append("line \(lineNumber) has \(lineLength) octets") }
            lineLength = 0
            lineNumber += 1
        default:
            lineLength += 1
        }
    }
    return problems
}
