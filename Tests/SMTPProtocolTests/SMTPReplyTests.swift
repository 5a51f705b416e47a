import NIOCore
import Testing
@testable import SMTPProtocol

/// RFC 5321 §4.2.1 reply format with RFC 2034 enhanced codes.
struct SMTPReplyTests {
    static let cases: [(SMTPReply, String)] = [
        (SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok"), "250 2.1.0 Ok\r\n"),
        (SMTPReply(220, nil, "relay.example ESMTP"), "220 relay.example ESMTP\r\n"),
        (SMTPReply(250, nil, ["relay.example", "PIPELINING", "SIZE 10"]), "250-relay.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n"),
        (SMTPReply(550, EnhancedStatusCode(5, 7, 1), ["first", "second"]), "550-5.7.1 first\r\n550 5.7.1 second\r\n"),
        (SMTPReply(354, nil, "End data with <CR><LF>.<CR><LF>"), "354 End data with <CR><LF>.<CR><LF>\r\n"),
    ]

    @Test(arguments: cases)
    func writesReply(reply: SMTPReply, wire: String) {
        var buffer = ByteBuffer()
        reply.write(to: &buffer)
        #expect(String(buffer: buffer) == wire)
    }

    @Test func parsesEnhancedStatusCodes() {
        #expect(EnhancedStatusCode("5.7.1") == EnhancedStatusCode(5, 7, 1))
        #expect(EnhancedStatusCode("4.4.7") == EnhancedStatusCode(4, 4, 7))
        #expect(EnhancedStatusCode("3.1.1") == nil)
        #expect(EnhancedStatusCode("5.7") == nil)
        #expect(EnhancedStatusCode("x.y.z") == nil)
    }
}
