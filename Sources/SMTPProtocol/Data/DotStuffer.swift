import NIOCore

/// Encodes message text for the wire after `354` (RFC 5321 §4.5.2): a `.` is added in front of every
/// line that starts with `.`, and the text ends with `<CRLF>.<CRLF>`. The input is CRLF-framed message
/// text, as the queue stores it; it may arrive in chunks of any size.
public struct DotStuffer: Sendable {
    private var isAtLineStart = true
    private var lastByte: UInt8?

    public init() {}

    /// Appends the stuffed form of `chunk` to `output`.
    public mutating func stuff(_ chunk: ByteBuffer, into output: inout ByteBuffer) {
        chunk.withUnsafeReadableBytes { bytes in
            var runStart = 0
            for index in bytes.indices {
                if isAtLineStart && bytes[index] == .dot {
                    output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                    output.writeInteger(UInt8.dot)
                    runStart = index
                }
                isAtLineStart = bytes[index] == .lf && (index > 0 ? bytes[index - 1] : lastByte) == .cr
            }
            output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart...]))
            if let last = bytes.last { lastByte = last }
        }
    }

    /// Appends the end of data: a CRLF first if the text did not end with one, then `.CRLF`.
    public mutating func finish(into output: inout ByteBuffer) {
        if !isAtLineStart {
            output.writeStaticString("\r\n")
        }
        output.writeStaticString(".\r\n")
        isAtLineStart = true
        lastByte = nil
    }
}
