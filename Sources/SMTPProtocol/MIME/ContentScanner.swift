import NIOCore

/// Finds a ``ContentProfile`` as the text streams by, in pieces cut anywhere. The header section is read
/// octet by octet (it is short, and its end must be found); the body, nearly all of a large message, is
/// read eight octets at a time: one load, a mask for the high bits and an exact test for a line feed, so a
/// 7-bit message with short lines costs a single fast pass and no copy.
public struct ContentScanner: Sendable {
    public private(set) var profile = ContentProfile()
    /// Octets since the last LF: a line is too long when more than 999 (998 and a CR) come before its LF.
    private var lineLength = 0
    private var isInBody = false
    /// The last header octet, to see the empty line (a lone CR) that ends the section.
    private var previous: UInt8 = 0

    /// RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF; counted here up to the LF, so 999 with the CR.
    static let longestLine = SMTPLimits.textLineLength - 1

    /// `startsInBody` skips the header section: for a part's body alone.
    public init(startsInBody: Bool = false) {
        isInBody = startsInBody
    }

    public mutating func scan(_ chunk: ByteBuffer) {
        chunk.withUnsafeReadableBytes { scan($0) }
    }

    public mutating func scan(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while !isInBody, index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\n") {
                if lineLength > Self.longestLine { profile.hasLongLines = true }
                // An empty line (only its CR) ends the header section (RFC 5322 §2.1).
                if lineLength == 0 || (lineLength == 1 && previous == UInt8(ascii: "\r")) { isInBody = true }
                lineLength = 0
                continue
            }
            if byte >= 0x80 { profile.hasEightBitHeaders = true }
            lineLength += 1
            previous = byte
        }
        guard index < bytes.count else { return }
        scanBody(UnsafeRawBufferPointer(rebasing: bytes[index...]))
    }

    /// The end of the text: a last line without its CRLF counts too (it has no CR either: 998 octets).
    public mutating func finish() -> ContentProfile {
        if lineLength > Self.longestLine - 1 { profile.hasLongLines = true }
        return profile
    }

    /// Eight octets at a time. A word's LFs are found exactly (no false positives), so the first tells the
    /// length of the line that ends in it and the last where the next line starts.
    private mutating func scanBody(_ bytes: UnsafeRawBufferPointer) {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let lows: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        let lineFeeds = ones &* UInt64(UInt8(ascii: "\n"))
        var highBits: UInt64 = 0
        var length = lineLength
        var isLong = profile.hasLongLines
        var index = 0
        let count = bytes.count
        while index + 8 <= count {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            highBits |= word
            let x = word ^ lineFeeds
            // A high bit set exactly where a byte of x is zero, that is where the word holds an LF.
            let zeros = ~(((x & lows) &+ lows) | x | lows)
            if zeros == 0 {
                length += 8
            } else {
                let first = zeros.trailingZeroBitCount / 8
                if length + first > Self.longestLine { isLong = true }
                let last = (63 - zeros.leadingZeroBitCount) / 8
                length = 7 - last
            }
            if length > Self.longestLine { isLong = true }
            index += 8
        }
        while index < count {
            let byte = bytes[index]
            highBits |= UInt64(byte)
            if byte == UInt8(ascii: "\n") {
                if length > Self.longestLine { isLong = true }
                length = 0
            } else {
                length += 1
            }
            index += 1
        }
        lineLength = length
        profile.hasLongLines = isLong
        if highBits & highs != 0 { profile.hasEightBitBody = true }
    }
}
