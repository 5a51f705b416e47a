import NIOCore

/// Splits command input into lines on CRLF, and only on CRLF (RFC 5321 §2.3.8): a bare CR or LF stays
/// inside the line, where the command parser refuses it. A line longer than the limit is consumed up to
/// its CRLF, however long it grows, without being stored, and reported once as ``Frame/overlong``.
public struct CommandLineFramer: Sendable {
    public enum Frame: Hashable, Sendable {
        /// A complete line, without its CRLF.
        case line(ByteBuffer)
        /// A line that exceeded the limit; it has been discarded.
        case overlong
    }

    public let maximumLength: Int
    private var isDiscarding = false

    /// - Parameter maximumLength: the longest line accepted, CRLF included.
    public init(maximumLength: Int = SMTPLimits.maximumLineLength) {
        self.maximumLength = maximumLength
    }

    /// The next frame in `buffer`, or `nil` when more input is needed.
    public mutating func next(_ buffer: inout ByteBuffer) -> Frame? {
        while true {
            guard let end = Self.firstCRLF(in: buffer) else {
                if isDiscarding || buffer.readableBytes >= maximumLength {
                    // Keep a trailing CR: it may be the first half of the CRLF that ends this line.
                    let keep = buffer.readableBytesView.last == .cr ? 1 : 0
                    buffer.moveReaderIndex(forwardBy: buffer.readableBytes - keep)
                    isDiscarding = true
                }
                return nil
            }
            let length = end - buffer.readerIndex
            if isDiscarding || length + 2 > maximumLength {
                buffer.moveReaderIndex(forwardBy: length + 2)
                isDiscarding = false
                return .overlong
            }
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 2)
            return .line(line)
        }
    }

    /// The index of the CR of the first CRLF.
    static func firstCRLF(in buffer: ByteBuffer) -> Int? {
        let view = buffer.readableBytesView
        var start = view.startIndex
        while let cr = view[start...].firstIndex(of: .cr) {
            let next = view.index(after: cr)
            guard next < view.endIndex else { return nil }
            if view[next] == .lf { return cr }
            start = next
        }
        return nil
    }
}
