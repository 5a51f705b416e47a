import NIOCore

/// Watches the header section of a message as its text streams by (RFC 5322 §2.2, §3.6), noting what the
/// server must know before it queues the message: how many `Received:` fields there are (loop detection,
/// RFC 5321 §6.3), and whether `Date:` and `Message-ID:` are present (RFC 5321 §6.4 lets a submission
/// server add them). The text must be CRLF-framed, as ``DataDecoder`` produces it.
public struct HeaderSectionScanner: Sendable {
    public private(set) var receivedCount = 0
    public private(set) var hasDate = false
    public private(set) var hasMessageID = false
    /// `true` once the empty line that ends the header section has been seen.
    public private(set) var isFinished = false

    /// The first octets of the current line, lowercased: enough to tell the fields apart.
    private var linePrefix: [UInt8] = []
    private var lineLength = 0
    private static let prefixLength = 11  // "message-id:"

    public init() {
        linePrefix.reserveCapacity(Self.prefixLength)
    }

    public mutating func scan(_ chunk: ByteBuffer) {
        guard !isFinished else { return }
        chunk.withUnsafeReadableBytes { bytes in
            for byte in bytes {
                if byte == .lf {
                    finishLine()
                    if isFinished { return }
                    continue
                }
                if byte != .cr {
                    if linePrefix.count < Self.prefixLength {
                        linePrefix.append(byte | (byte >= 65 && byte <= 90 ? 0x20 : 0))
                    }
                    lineLength += 1
                }
            }
        }
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
