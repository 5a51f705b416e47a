import NIOCore

/// Decodes the text that follows `354` (RFC 5321 §4.1.1.4, §4.5.2) as it streams in.
///
/// - The only end of data is `<CRLF>.<CRLF>`, the first CRLF being the end of the last text line.
///   A bare CR or a bare LF never ends a line, and never ends the data: `<LF>.<LF>`, `<LF>.<CRLF>`
///   and `<CR>.<CR>` are all plain text here (SMTP smuggling, CVE-2023-51764).
/// - A line that starts with `.` loses that first `.` (dot-unstuffing, §4.5.2).
/// - A bare CR or LF is recorded. Under ``LineEndingPolicy/normalize`` it is written as CRLF; under
///   ``LineEndingPolicy/reject`` the message will be refused, so the decoder stops producing output.
/// - A NUL octet is recorded the same way: message text has none (RFC 5322 §3.5 `text`, RFC 6152 §2
///   8BITMIME), and a NUL before a `.` line must not let a next hop that drops NULs see an end of data.
///   Under ``LineEndingPolicy/normalize`` it is removed, under ``LineEndingPolicy/reject`` the message will
///   be refused. A removed NUL leaves what follows it mid-line: it never makes a line that could end the data.
/// - Octets beyond `maximumSize` are counted and dropped: memory stays bounded whatever the client sends.
///
/// The decoder holds no bytes of its own between calls; its state is a handful of flags.
public struct DataDecoder: Sendable {
    /// What to do with a bare CR or LF, or a NUL, in the text (`[inbound] bare_line_endings`).
    public enum LineEndingPolicy: String, Sendable, Hashable, Codable {
        /// Refuse the message (`550 5.6.0`).
        case reject
        /// Accept it, a bare CR or LF made CRLF and a NUL removed.
        case normalize
    }

    private enum State: Sendable {
        case lineStart
        case midLine
        case midLineCR
        case dotAtLineStart
        case dotCR
    }

    public let maximumSize: Int
    public let lineEndingPolicy: LineEndingPolicy
    public private(set) var sawBareLineEnding = false
    /// A NUL octet was in the text.
    public private(set) var sawNUL = false
    /// Octets of decoded message text so far, counted even when they are dropped.
    public private(set) var decodedSize = 0
    private var state = State.lineStart

    public init(maximumSize: Int, lineEndingPolicy: LineEndingPolicy) {
        self.maximumSize = maximumSize
        self.lineEndingPolicy = lineEndingPolicy
    }

    public var exceededMaximumSize: Bool { decodedSize > maximumSize }

    /// `true` once the message can no longer be accepted: it is too large, or it has a bare line ending
    /// or a NUL under the reject policy. The rest of the data is still read, to find its end.
    public var isDiscarding: Bool {
        exceededMaximumSize || ((sawBareLineEnding || sawNUL) && lineEndingPolicy == .reject)
    }

    /// Consumes octets from `input`, appending decoded text to `output`. Returns `true` when the end of
    /// data was found; `input`'s reader index then stands just after it, at the next command.
    public mutating func decode(_ input: inout ByteBuffer, into output: inout ByteBuffer) -> Bool {
        var isFinished = false
        let consumed = input.withUnsafeReadableBytes { bytes -> Int in
            var index = 0
            scanning: while index < bytes.count {
                switch state {
                case .midLine:
                    let end = Self.firstLineEndingOrNUL(in: bytes, from: index)
                    if end > index { emit(UnsafeRawBufferPointer(rebasing: bytes[index..<end]), into: &output) }
                    index = end
                    guard index < bytes.count else { break scanning }
                    switch bytes[index] {
                    case .cr: state = .midLineCR
                    case .lf: bareLineEnding(into: &output)
                    default: sawNUL = true  // dropped: never written, never counted
                    }
                    index += 1
                case .midLineCR:
                    if bytes[index] == .lf {
                        emit(crlf, into: &output)
                        state = .lineStart
                        index += 1
                    } else {
                        bareLineEnding(into: &output)
                    }
                case .lineStart:
                    if bytes[index] == .dot {
                        state = .dotAtLineStart
                        index += 1
                    } else {
                        state = .midLine
                    }
                case .dotAtLineStart:
                    switch bytes[index] {
                    case .cr:
                        state = .dotCR
                        index += 1
                    case .lf:
                        // `.` then a bare LF: keep the dot, the bare LF is handled as text.
                        emit(dot, into: &output)
                        state = .midLine
                    default:
                        // Dot-unstuffing: the leading dot is dropped, the rest of the line is text.
                        state = .midLine
                    }
                case .dotCR:
                    if bytes[index] == .lf {
                        index += 1
                        isFinished = true
                        state = .lineStart
                        break scanning
                    }
                    emit(dot, into: &output)
                    bareLineEnding(into: &output)
                }
            }
            return index
        }
        input.moveReaderIndex(forwardBy: consumed)
        return isFinished
    }

    /// The index of the first CR, LF or NUL at or after `start`, or `bytes.count`. Eight octets at a time
    /// (the test for a zero byte of "Bit Twiddling Hacks", on the word and on it XOR CR and XOR LF): the
    /// lowest flagged byte is always a real match, so the first one is exact. This is the decoder's hot loop.
    @inline(__always)
    static func firstLineEndingOrNUL(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        var index = start
        while index + 8 <= bytes.count {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            let crs = word ^ (ones &* UInt64(UInt8.cr))
            let lfs = word ^ (ones &* UInt64(UInt8.lf))
            let found = ((word &- ones) & ~word | (crs &- ones) & ~crs | (lfs &- ones) & ~lfs) & high
            if found != 0 { return index + found.trailingZeroBitCount / 8 }
            index += 8
        }
        while index < bytes.count, bytes[index] != .cr, bytes[index] != .lf, bytes[index] != 0 { index += 1 }
        return index
    }

    /// A bare CR or LF. What follows it is mid-line text: it never starts a line that could be
    /// unstuffed or end the data.
    private mutating func bareLineEnding(into output: inout ByteBuffer) {
        sawBareLineEnding = true
        state = .midLine
        if lineEndingPolicy == .normalize {
            emit(crlf, into: &output)
        }
    }

    private mutating func emit(_ bytes: UnsafeRawBufferPointer, into output: inout ByteBuffer) {
        decodedSize += bytes.count
        if !isDiscarding {
            output.writeBytes(bytes)
        }
    }

    private mutating func emit(_ bytes: StaticString, into output: inout ByteBuffer) {
        bytes.withUTF8Buffer { emit(UnsafeRawBufferPointer($0), into: &output) }
    }
}

private let crlf: StaticString = "\r\n"
private let dot: StaticString = "."

extension UInt8 {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let dot = UInt8(ascii: ".")
}
