import NIOCore

/// Reads server replies (RFC 5321 §4.2) from a byte stream, whole: the lines of a multi-line reply
/// (`250-…` then `250 …`) are gathered into one ``SMTPReply`` before it is returned. Lines end with CRLF;
/// a bare LF is tolerated from servers, as every client does.
public struct ReplyParser: Sendable {
    public enum ParseError: Error, Hashable, Sendable {
        case malformedLine(String)
        case inconsistentCode
        case lineTooLong
        case tooManyLines
    }

    /// RFC 5321 §4.5.3.1.5 says 512; real servers send longer, so be generous but bounded.
    public static let maximumLineLength = 4096
    public static let maximumLines = 200

    private var code: Int?
    private var lines: [String] = []

    public init() {}

    /// The next whole reply in `buffer`, or `nil` when more bytes are needed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(ParseError) -> SMTPReply? {
        while true {
            let view = buffer.readableBytesView
            guard let lf = view.firstIndex(of: .lf) else {
                if view.count > Self.maximumLineLength { throw .lineTooLong }
                return nil
            }
            var length = lf - view.startIndex
            guard length <= Self.maximumLineLength else { throw .lineTooLong }
            let lineLength = length + 1
            if length > 0, view[lf - 1] == .cr { length -= 1 }
            let line = String(decoding: view[view.startIndex..<(view.startIndex + length)], as: UTF8.self)
            buffer.moveReaderIndex(forwardBy: lineLength)
            if let reply = try consume(line) { return reply }
        }
    }

    private mutating func consume(_ line: String) throws(ParseError) -> SMTPReply? {
        let bytes = Array(line.utf8)
        guard bytes.count >= 3, bytes[0...2].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let lineCode = Int(String(decoding: bytes[0...2], as: UTF8.self)), (200...599).contains(lineCode),
              bytes.count == 3 || bytes[3] == UInt8(ascii: " ") || bytes[3] == UInt8(ascii: "-") else {
            throw .malformedLine(String(line.prefix(80)))
        }
        if let code, code != lineCode { throw .inconsistentCode }
        code = lineCode
        lines.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
        guard lines.count <= Self.maximumLines else { throw .tooManyLines }
        let isLast = bytes.count == 3 || bytes[3] == UInt8(ascii: " ")
        guard isLast else { return nil }
        defer {
            code = nil
            lines = []
        }
        return Self.reply(code: lineCode, lines: lines)
    }

    /// Separates an enhanced status code (RFC 2034 §4) from the text when the first line starts with one
    /// whose class matches the reply code's first digit. The code and the spaces after it are removed from
    /// every line that repeats it; a line that does not has only its leading spaces removed, so that the
    /// reply reads back the same once ``SMTPReply/write(to:)`` has put the code in front of every line.
    static func reply(code: Int, lines: [String]) -> SMTPReply {
        let first = lines[0]
        if let space = first.firstIndex(of: " ") ?? (first.isEmpty ? nil : first.endIndex),
           let enhanced = EnhancedStatusCode(first[..<space]), enhanced.codeClass == code / 100 {
            let prefix = String(first[..<space])
            let stripped = lines.map { line -> String in
                let text = line.hasPrefix(prefix) ? line.dropFirst(prefix.count) : Substring(line)
                return String(text.drop(while: { $0 == " " }))
            }
            return SMTPReply(code, enhanced, stripped)
        }
        return SMTPReply(code, nil, lines)
    }
}
