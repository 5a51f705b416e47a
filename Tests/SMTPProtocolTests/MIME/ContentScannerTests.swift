import NIOCore
import Testing
@testable import SMTPProtocol

/// The one pass that tells what a message needs of the next hop: 8-bit octets in the header section and
/// in the body apart, and lines over 998 octets (RFC 5321 §4.5.3.1.6), whichever way the text is cut.
struct ContentScannerTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var text: [UInt8]
        var expected: ContentProfile
        var testDescription: String { name }
    }

    static func line(_ length: Int) -> String { String(repeating: "x", count: length) + "\r\n" }

    static let cases: [Case] = [
        Case(name: "7-bit, short lines", text: Array("Subject: a\r\n\r\nHello.\r\n".utf8), expected: ContentProfile()),
        Case(name: "8-bit in the body", text: Array("Subject: a\r\n\r\nGrüße\r\n".utf8), expected: ContentProfile(hasEightBitBody: true)),
        Case(name: "8-bit in a header", text: Array("Subject: Grüße\r\n\r\nHello.\r\n".utf8), expected: ContentProfile(hasEightBitHeaders: true)),
        Case(name: "a body line of 998 octets", text: Array(("S: a\r\n\r\n" + line(998) + "end\r\n").utf8), expected: ContentProfile()),
        Case(name: "a body line of 999 octets", text: Array(("S: a\r\n\r\n" + line(999) + "end\r\n").utf8), expected: ContentProfile(hasLongLines: true)),
        Case(name: "a last line of 999 octets without CRLF", text: Array(("S: a\r\n\r\n" + String(repeating: "y", count: 999)).utf8), expected: ContentProfile(hasLongLines: true)),
        Case(name: "a header line of 999 octets", text: Array(("S: " + line(996) + "\r\nbody\r\n").utf8), expected: ContentProfile(hasLongLines: true)),
        Case(name: "no header section", text: Array("\r\nbody é\r\n".utf8), expected: ContentProfile(hasEightBitBody: true)),
        Case(name: "a folded header, then 8-bit body", text: Array("S: a\r\n b\r\n\r\n\u{00FF}\r\n".utf8), expected: ContentProfile(hasEightBitBody: true)),
    ]

    @Test(arguments: cases)
    func profiles(_ test: Case) {
        var scanner = ContentScanner()
        scanner.scan(ByteBuffer(bytes: test.text))
        #expect(scanner.finish() == test.expected)
    }

    /// Every two-piece cut and the byte-by-byte cut give the same profile (the word-at-a-time body scan
    /// included: the long line straddles words and pieces).
    @Test(arguments: cases.filter { $0.text.count < 1200 })
    func profilesWhateverTheCut(_ test: Case) {
        for pieces in Fragmentation.all(test.text) {
            var scanner = ContentScanner()
            for piece in pieces { scanner.scan(piece) }
            #expect(scanner.finish() == test.expected, "cut into \(pieces.count) pieces")
        }
    }

    /// A long line anywhere in a large 7-bit body, at every offset within a word.
    @Test(arguments: 0..<9)
    func findsALongLineAtAnyOffset(offset: Int) {
        let text = "S: a\r\n\r\n" + String(repeating: "z", count: offset) + "\r\n" + String(repeating: Self.line(70), count: 100) + Self.line(999 + offset) + Self.line(10)
        var scanner = ContentScanner()
        scanner.scan(ByteBuffer(string: text))
        #expect(scanner.finish() == ContentProfile(hasLongLines: true))
        var short = ContentScanner()
        short.scan(ByteBuffer(string: "S: a\r\n\r\n" + String(repeating: "z", count: offset) + "\r\n" + String(repeating: Self.line(998), count: 20)))
        #expect(short.finish() == ContentProfile())
    }
}
