import NIOCore
import Testing
@testable import SMTPProtocol

/// RFC 5321 §4.1.1.4 and §4.5.2: end of data, dot-unstuffing, and bare line endings (CVE-2023-51764).
struct DataDecoderTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var input: String
        var policy: DataDecoder.LineEndingPolicy
        /// `nil` when the data must not be finished.
        var output: String?
        var sawBareLineEnding: Bool
        var sawNUL = false
        var remainder: String = ""
        var testDescription: String { "\(policy) \(input.debugDescription)" }
    }

    static let cases: [Case] = [
        Case(input: ".\r\n", policy: .reject, output: "", sawBareLineEnding: false),
        Case(input: "Subject: x\r\n\r\nbody\r\n.\r\n", policy: .reject, output: "Subject: x\r\n\r\nbody\r\n", sawBareLineEnding: false),
        Case(input: "..leading dot\r\n.\r\n", policy: .reject, output: ".leading dot\r\n", sawBareLineEnding: false),
        Case(input: "...\r\n.\r\n", policy: .reject, output: "..\r\n", sawBareLineEnding: false),
        Case(input: "a\r\n.\r\nMAIL FROM:<x@y>\r\n", policy: .reject, output: "a\r\n", sawBareLineEnding: false, remainder: "MAIL FROM:<x@y>\r\n"),
        Case(input: "a.\r\nb\r\n.\r\n", policy: .reject, output: "a.\r\nb\r\n", sawBareLineEnding: false),
        // Smuggling attempts: none of these ends the data.
        Case(input: "a\n.\nMAIL FROM:<x@y>\r\n", policy: .reject, output: nil, sawBareLineEnding: true),
        Case(input: "a\n.\r\nMAIL FROM:<x@y>\r\n", policy: .reject, output: nil, sawBareLineEnding: true),
        Case(input: "a\r.\rMAIL FROM:<x@y>\r\n", policy: .reject, output: nil, sawBareLineEnding: true),
        Case(input: "a\r\n.\nMAIL FROM:<x@y>\r\n", policy: .reject, output: nil, sawBareLineEnding: true),
        Case(input: "a\r\n.\rMAIL\r\n", policy: .reject, output: nil, sawBareLineEnding: true),
        // A smuggling attempt is read to the real end and flagged.
        Case(input: "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", policy: .reject, output: "", sawBareLineEnding: true),
        // Normalized: bare CR and bare LF become CRLF, and nothing after them is unstuffed or ends the data.
        Case(input: "a\nb\r\n.\r\n", policy: .normalize, output: "a\r\nb\r\n", sawBareLineEnding: true),
        Case(input: "a\rb\r\n.\r\n", policy: .normalize, output: "a\r\nb\r\n", sawBareLineEnding: true),
        Case(input: "a\n.\nb\r\n.\r\n", policy: .normalize, output: "a\r\n.\r\nb\r\n", sawBareLineEnding: true),
        Case(input: "a\n.\r\nb\r\n.\r\n", policy: .normalize, output: "a\r\n.\r\nb\r\n", sawBareLineEnding: true),
        Case(input: "a\r\n.\nb\r\n.\r\n", policy: .normalize, output: "a\r\n.\r\nb\r\n", sawBareLineEnding: true),
        Case(input: "a\r\r\nb\r\n.\r\n", policy: .normalize, output: "a\r\n\r\nb\r\n", sawBareLineEnding: true),
        // NUL (RFC 5322 §3.5): refused, or removed under normalize; a removed NUL never makes a line that ends
        // the data or is unstuffed (`<CRLF><NUL>.<CRLF>` is the smuggling scanner's vector).
        Case(input: "a\r\n\0.\r\nMAIL FROM:<x@y>\r\n", policy: .reject, output: nil, sawBareLineEnding: false, sawNUL: true),
        Case(input: "a\r\n\0.\r\nMAIL FROM:<x@y>\r\n.\r\n", policy: .reject, output: "", sawBareLineEnding: false, sawNUL: true),
        Case(input: "a\0b\r\n.\r\n", policy: .reject, output: "", sawBareLineEnding: false, sawNUL: true),
        Case(input: "a\r\n\0.\r\nb\r\n.\r\n", policy: .normalize, output: "a\r\n.\r\nb\r\n", sawBareLineEnding: false, sawNUL: true),
        Case(input: "a\0b\0\0c\r\n.\r\n", policy: .normalize, output: "abc\r\n", sawBareLineEnding: false, sawNUL: true),
        Case(input: "0123456789abcdef\0\r\n\0\r\n.\r\n", policy: .normalize, output: "0123456789abcdef\r\n\r\n", sawBareLineEnding: false, sawNUL: true),
        Case(input: ".\0\r\n..\0x\r\n.\r\n", policy: .normalize, output: "\r\n.x\r\n", sawBareLineEnding: false, sawNUL: true),
        Case(input: "a\0\nb\r\n.\r\n", policy: .normalize, output: "a\r\nb\r\n", sawBareLineEnding: true, sawNUL: true),
        // Long lines are scanned eight octets at a time: the first CR, LF or NUL is found wherever it falls.
        Case(input: "0123456789abcdefghij\nk\r\n.\r\n", policy: .normalize, output: "0123456789abcdefghij\r\nk\r\n", sawBareLineEnding: true),
        Case(input: "0123456789abcdefghij\r\n.\r\n", policy: .reject, output: "0123456789abcdefghij\r\n", sawBareLineEnding: false),
        Case(input: "\u{80}\u{FF}0123456789\u{7F}\r\n.\r\n", policy: .reject, output: "\u{80}\u{FF}0123456789\u{7F}\r\n", sawBareLineEnding: false),
    ]

    @Test(arguments: cases)
    func decodesEveryFragmentation(_ testCase: Case) {
        for pieces in Fragmentation.all(Array(testCase.input.utf8)) {
            var decoder = DataDecoder(maximumSize: 1 << 20, lineEndingPolicy: testCase.policy)
            var output = ByteBuffer()
            var isFinished = false
            var remainder = ByteBuffer()
            for var piece in pieces {
                if isFinished {
                    remainder.writeBuffer(&piece)
                    continue
                }
                isFinished = decoder.decode(&piece, into: &output)
                remainder.writeBuffer(&piece)
            }
            if let expected = testCase.output {
                #expect(isFinished, "\(pieces.count) pieces")
                if testCase.policy == .normalize || !(testCase.sawBareLineEnding || testCase.sawNUL) {
                    #expect(String(buffer: output) == expected, "\(pieces.count) pieces")
                }
                #expect(String(buffer: remainder) == testCase.remainder)
            } else {
                #expect(!isFinished, "\(pieces.count) pieces")
            }
            #expect(decoder.sawBareLineEnding == testCase.sawBareLineEnding)
            #expect(decoder.sawNUL == testCase.sawNUL)
        }
    }

    @Test func countsButDropsTextBeyondTheLimit() {
        var decoder = DataDecoder(maximumSize: 10, lineEndingPolicy: .reject)
        var input = ByteBuffer(string: String(repeating: "x", count: 100) + "\r\n.\r\n")
        var output = ByteBuffer()
        #expect(decoder.decode(&input, into: &output))
        #expect(decoder.exceededMaximumSize)
        #expect(decoder.decodedSize == 102)
        #expect(output.readableBytes <= 10)
    }

    @Test func dotStuffingRoundTrips() {
        let texts = ["", "plain\r\n", ".\r\n", "..\r\n", ".a\r\n.b\r\nc.\r\n", "no final newline", "x\r\n.\r\n.\r\n"]
        for text in texts {
            for pieces in Fragmentation.all(Array(text.utf8)) {
                var stuffer = DotStuffer()
                var wire = ByteBuffer()
                for piece in pieces { stuffer.stuff(piece, into: &wire) }
                stuffer.finish(into: &wire)
                var decoder = DataDecoder(maximumSize: 1 << 20, lineEndingPolicy: .reject)
                var output = ByteBuffer()
                #expect(decoder.decode(&wire, into: &output))
                #expect(wire.readableBytes == 0)
                let expected = text.isEmpty || text.hasSuffix("\r\n") ? text : text + "\r\n"
                #expect(String(buffer: output) == expected, "\(text.debugDescription)")
            }
        }
    }

    @Test func stuffsLinesThatStartWithADot() {
        var stuffer = DotStuffer()
        var wire = ByteBuffer()
        stuffer.stuff(ByteBuffer(string: ".a\r\nb\r\n.\r\n"), into: &wire)
        stuffer.finish(into: &wire)
        #expect(String(buffer: wire) == "..a\r\nb\r\n..\r\n.\r\n")
    }
}
