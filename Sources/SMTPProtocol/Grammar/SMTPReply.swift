import NIOCore

/// A server reply (RFC 5321 §4.2): a three-digit code and one or more lines of text, the text of
/// each line starting with the enhanced status code when there is one (RFC 2034 §3).
public struct SMTPReply: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var enhancedCode: EnhancedStatusCode?
    public var lines: [String]

    public init(_ code: Int, _ enhancedCode: EnhancedStatusCode?, _ lines: [String]) {
        precondition((200...599).contains(code), "reply code out of range")
        self.code = code
        self.enhancedCode = enhancedCode
        self.lines = lines.isEmpty ? [""] : lines
    }

    public init(_ code: Int, _ enhancedCode: EnhancedStatusCode?, _ text: String) {
        self.init(code, enhancedCode, [text])
    }

    public var isPositive: Bool { code < 400 }
    public var isTransientFailure: Bool { (400..<500).contains(code) }
    public var isPermanentFailure: Bool { code >= 500 }

    /// The reply as the text of its first line, as written in logs and DSNs: `550 5.7.1 Relaying denied`.
    public var description: String {
        lines.map { line in
            var text = String(code)
            if let enhancedCode { text += " \(enhancedCode)" }
            if !line.isEmpty { text += " " + line }
            return text
        }.joined(separator: " / ")
    }

    /// Writes the reply on the wire: every line but the last as `code-text`, the last as `code text`
    /// (RFC 5321 §4.2.1).
    public func write(to buffer: inout ByteBuffer) {
        for (index, line) in lines.enumerated() {
            buffer.writeString(String(code))
            buffer.writeInteger(index == lines.count - 1 ? UInt8(ascii: " ") : UInt8(ascii: "-"))
            if let enhancedCode {
                buffer.writeString(enhancedCode.description)
                if !line.isEmpty { buffer.writeInteger(UInt8(ascii: " ")) }
            }
            buffer.writeString(line)
            buffer.writeStaticString("\r\n")
        }
    }
}
