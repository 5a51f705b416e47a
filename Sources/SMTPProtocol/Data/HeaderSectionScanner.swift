import NIOCore

/// The one reader of a message's header section (RFC 5322 §2.2, §3.6) as its text streams by: where the
/// section ends (after the empty line; the whole text when it has none), and what the server must know
/// before it queues the message: how many `Received:` fields there are (loop detection, RFC 5321 §6.3),
/// and whether `Date:` and `Message-ID:` are present (RFC 5321 §6.4 lets a submission server add them).
/// The text is CRLF-framed, as ``DataDecoder`` produces it: a line ends at CRLF only.
public struct HeaderSectionScanner: Sendable {
    public private(set) var receivedCount = 0
    public private(set) var hasDate = false
    public private(set) var hasMessageID = false
    /// `true` once the empty line that ends the header section has been seen.
    public private(set) var isFinished = false
    /// The octets of the header section scanned so far, its empty line included once ``isFinished``.
    public private(set) var length = 0

    /// The first octets of the current line, lowercased: enough to tell the fields apart.
    private var linePrefix: [UInt8] = []
    private var lineLength = 0
    /// The last octet scanned was a CR, which a LF would make the line's end.
    private var isAfterCR = false
    private static let prefixLength = 11  // "message-id:"

    public init() {
        linePrefix.reserveCapacity(Self.prefixLength)
    }

    public mutating func scan(_ chunk: ByteBuffer) {
        guard !isFinished else { return }
        chunk.withUnsafeReadableBytes { bytes in
            for byte in bytes {
                length += 1
                if byte == .lf, isAfterCR {
                    isAfterCR = false
                    finishLine()
                    if isFinished { return }
                    continue
                }
                if isAfterCR { addToLine(.cr) }
                isAfterCR = byte == .cr
                if !isAfterCR { addToLine(byte) }
            }
        }
    }

    /// The header section of a whole message: everything up to and including the empty line that ends it,
    /// or the whole message when it has no empty line.
    public static func headerSection(of message: ByteBuffer) -> ByteBuffer {
        var scanner = HeaderSectionScanner()
        scanner.scan(message)
        return scanner.isFinished ? message.getSlice(at: message.readerIndex, length: scanner.length)! : message
    }

    private mutating func addToLine(_ byte: UInt8) {
        if linePrefix.count < Self.prefixLength {
            linePrefix.append(byte | (byte >= 65 && byte <= 90 ? 0x20 : 0))
        }
        lineLength += 1
    }

    private mutating func finishLine() {
        defer {
            linePrefix.removeAll(keepingCapacity: true)
            lineLength = 0
        }
        guard lineLength > 0 else {
            isFinished = true
            return
        }
        if linePrefix.starts(with: "received:".utf8) {
            receivedCount += 1
        } else if linePrefix.starts(with: "date:".utf8) {
            hasDate = true
        } else if linePrefix.starts(with: "message-id:".utf8) {
            hasMessageID = true
        }
    }
}
