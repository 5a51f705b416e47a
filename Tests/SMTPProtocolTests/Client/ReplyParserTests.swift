import NIOCore
import Testing
@testable import SMTPProtocol

/// RFC 5321 §4.2: replies, multi-line replies parsed whole, with RFC 2034 enhanced codes.
struct ReplyParserTests {
    static let cases: [(String, [SMTPReply])] = [
        ("220 mx.test ESMTP\r\n", [SMTPReply(220, nil, "mx.test ESMTP")]),
        ("250-mx.test\r\n250-PIPELINING\r\n250 DSN\r\n", [SMTPReply(250, nil, ["mx.test", "PIPELINING", "DSN"])]),
        ("550 5.1.1 User unknown\r\n", [SMTPReply(550, EnhancedStatusCode(5, 1, 1), "User unknown")]),
        ("550-5.7.1 line one\r\n550 5.7.1 line two\r\n", [SMTPReply(550, EnhancedStatusCode(5, 7, 1), ["line one", "line two"])]),
        ("451 4.3.0\r\n", [SMTPReply(451, EnhancedStatusCode(4, 3, 0), "")]),
        ("250\r\n", [SMTPReply(250, nil, "")]),
        ("550 4.1.1 mismatched class stays text\r\n", [SMTPReply(550, nil, "4.1.1 mismatched class stays text")]),
        ("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n", [SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok"), SMTPReply(250, EnhancedStatusCode(2, 1, 5), "Ok"), SMTPReply(354, nil, "go")]),
        ("250 bare LF is tolerated\n", [SMTPReply(250, nil, "bare LF is tolerated")]),
    ]

    @Test(arguments: cases)
    func parsesEveryFragmentation(input: String, expected: [SMTPReply]) throws {
        for pieces in Fragmentation.all(Array(input.utf8)) {
            var parser = ReplyParser()
            var buffer = ByteBuffer()
            var replies: [SMTPReply] = []
            for var piece in pieces {
                buffer.writeBuffer(&piece)
                while let reply = try parser.next(&buffer) { replies.append(reply) }
            }
            #expect(replies == expected, "\(pieces.count) pieces")
        }
    }

    static let malformed: [(String, ReplyParser.ParseError)] = [
        ("hello\r\n", .malformedLine("hello")),
        ("25 short\r\n", .malformedLine("25 short")),
        ("250x no separator\r\n", .malformedLine("250x no separator")),
        ("250-a\r\n251 b\r\n", .inconsistentCode),
        ("999 out of range\r\n", .malformedLine("999 out of range")),
    ]

    @Test(arguments: malformed)
    func refusesMalformedReplies(input: String, expected: ReplyParser.ParseError) {
        var parser = ReplyParser()
        var buffer = ByteBuffer(string: input)
        #expect(throws: expected) {
            while try parser.next(&buffer) != nil {}
        }
    }

    @Test func readsCapabilities() {
        let reply = SMTPReply(250, nil, ["mx.test greets you", "PIPELINING", "SIZE 1000", "8BITMIME", "DSN", "SMTPUTF8", "STARTTLS", "ENHANCEDSTATUSCODES", "AUTH PLAIN login"])
        let capabilities = ServerCapabilities(ehloReply: reply)
        #expect(capabilities.supportsPipelining && capabilities.supports8BitMIME && capabilities.supportsDSN)
        #expect(capabilities.supportsSMTPUTF8 && capabilities.supportsStartTLS && capabilities.supportsEnhancedStatusCodes)
        #expect(capabilities.maximumSize == 1000)
        #expect(capabilities.authMechanisms == ["PLAIN", "LOGIN"])
        #expect(ServerCapabilities(ehloReply: SMTPReply(250, nil, ["x", "SIZE"])).maximumSize == 0)
        #expect(ServerCapabilities(ehloReply: SMTPReply(250, nil, ["x"])).maximumSize == nil)
    }
}
