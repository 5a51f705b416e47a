import NIOCore
import Testing
@testable import SMTPProtocol

/// RFC 5321 §2.3.8 and §4.5.3.1.4: lines end with CRLF only, and have a length limit.
struct CommandLineFramerTests {
    static func frames(_ pieces: [ByteBuffer], maximumLength: Int = 16) -> [CommandLineFramer.Frame] {
        var framer = CommandLineFramer(maximumLength: maximumLength)
        var buffer = ByteBuffer()
        var frames: [CommandLineFramer.Frame] = []
        for var piece in pieces {
            buffer.writeBuffer(&piece)
            while let frame = framer.next(&buffer) { frames.append(frame) }
        }
        return frames
    }

    static let cases: [(String, [CommandLineFramer.Frame])] = [
        ("NOOP\r\n", [.line(ByteBuffer(string: "NOOP"))]),
        ("NOOP\r\nQUIT\r\n", [.line(ByteBuffer(string: "NOOP")), .line(ByteBuffer(string: "QUIT"))]),
        ("NO\nOP\r\n", [.line(ByteBuffer(string: "NO\nOP"))]),
        ("NO\rOP\r\n", [.line(ByteBuffer(string: "NO\rOP"))]),
        ("NOOP\n", []),
        ("\r\n", [.line(ByteBuffer())]),
        ("12345678901234\r\n", [.line(ByteBuffer(string: "12345678901234"))]),
        ("123456789012345\r\nNOOP\r\n", [.overlong, .line(ByteBuffer(string: "NOOP"))]),
        ("123456789012345678901234567890\r\nNOOP\r\n", [.overlong, .line(ByteBuffer(string: "NOOP"))]),
    ]

    @Test(arguments: cases)
    func framesEveryFragmentation(input: String, expected: [CommandLineFramer.Frame]) {
        for pieces in Fragmentation.all(Array(input.utf8)) {
            #expect(Self.frames(pieces) == expected, "\(pieces.count) pieces")
        }
    }

    @Test func discardsAHugeLineWithoutStoringIt() {
        var framer = CommandLineFramer(maximumLength: 512)
        var buffer = ByteBuffer()
        for _ in 0..<1000 {
            buffer.writeString(String(repeating: "x", count: 10_000))
            #expect(framer.next(&buffer) == nil)
            #expect(buffer.readableBytes <= 1)
        }
        buffer.writeString("\r\nNOOP\r\n")
        #expect(framer.next(&buffer) == .overlong)
        #expect(framer.next(&buffer) == .line(ByteBuffer(string: "NOOP")))
    }
}
