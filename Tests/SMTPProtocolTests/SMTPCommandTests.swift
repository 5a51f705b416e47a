import Testing
@testable import SMTPProtocol

/// RFC 5321 §4.1.1 command syntax, one fixture per row.
struct SMTPCommandTests {
    static let valid: [(String, SMTPCommand)] = [
        ("EHLO client.example", .ehlo("client.example")),
        ("ehlo [192.0.2.1]", .ehlo("[192.0.2.1]")),
        ("HELO client", .helo("client")),
        ("MAIL FROM:<a@example.com>", .mail(Mailbox(localPart: "a", domain: "example.com"), MailParameters())),
        ("mail from:<A.B@Example.COM>", .mail(Mailbox(localPart: "A.B", domain: "Example.COM"), MailParameters())),
        ("MAIL FROM: <a@example.com>", .mail(Mailbox(localPart: "a", domain: "example.com"), MailParameters())),
        ("MAIL FROM:<>", .mail(nil, MailParameters())),
        ("MAIL FROM:<@relay1.example,@relay2.example:user@example.com>", .mail(Mailbox(localPart: "user", domain: "example.com"), MailParameters())),
        ("RCPT TO:<b@example.org>", .recipient(Mailbox(localPart: "b", domain: "example.org"), RecipientParameters())),
        ("RCPT TO:<\"john doe\"@example.org>", .recipient(Mailbox(localPart: "\"john doe\"", domain: "example.org"), RecipientParameters())),
        ("RCPT TO:<x@[192.0.2.7]>", .recipient(Mailbox(localPart: "x", domain: "[192.0.2.7]"), RecipientParameters())),
        ("RCPT TO:<x@[IPv6:2001:db8::1]>", .recipient(Mailbox(localPart: "x", domain: "[IPv6:2001:db8::1]"), RecipientParameters())),
        ("RCPT TO:<用户@例子.广告>", .recipient(Mailbox(localPart: "用户", domain: "例子.广告"), RecipientParameters())),
        ("DATA", .data),
        ("RSET", .reset),
        ("NOOP", .noop),
        ("NOOP anything", .noop),
        ("QUIT", .quit),
        ("HELP", .help),
        ("HELP MAIL", .help),
        ("VRFY postmaster", .verify),
        ("EXPN list", .expand),
        ("STARTTLS", .startTLS),
    ]

    @Test(arguments: valid)
    func parsesValidCommand(line: String, expected: SMTPCommand) throws {
        #expect(try SMTPCommand(parsing: Substring(line)) == expected)
    }

    static let invalid: [(String, SMTPSyntaxError)] = [
        ("FROB", .unknownCommand),
        ("", .unknownCommand),
        ("EHLO", .malformedCommand),
        ("EHLO ", .malformedCommand),
        ("MAIL <a@b.c>", .malformedCommand),
        ("MAIL FROM:a@b.c", .malformedPath),
        ("MAIL FROM:<a@b.c", .malformedPath),
        ("MAIL FROM:<a@>", .malformedDomain),
        ("MAIL FROM:<@b.c>", .malformedPath),
        ("MAIL FROM:<a..b@c.d>", .malformedPath),
        ("MAIL FROM:<a@-b.c>", .malformedDomain),
        ("MAIL FROM:<a@b.c.>", .malformedDomain),
        ("RCPT TO:<>", .malformedPath),
        ("RCPT TO:<a b@c.d>", .malformedPath),
        ("RCPT TO:<\"unterminated@c.d>", .malformedPath),
        ("RCPT TO:<a@[]>", .malformedDomain),
        ("DATA now", .malformedCommand),
        ("QUIT please", .malformedCommand),
        ("VRFY", .malformedCommand),
        ("MAIL FROM:<a@b.c> FOO=1", .unknownParameter("FOO")),
        ("MAIL FROM:<a@b.c> SIZE=abc", .malformedParameter("SIZE")),
        ("MAIL FROM:<a@b.c> SIZE=1 SIZE=2", .duplicateParameter("SIZE")),
        ("MAIL FROM:<a@b.c> BODY=BINARYMIME", .malformedParameter("BODY")),
        ("MAIL FROM:<a@b.c> RET=ALL", .malformedParameter("RET")),
        ("MAIL FROM:<a@b.c> ENVID=a=b", .malformedParameter("ENVID")),
        ("MAIL FROM:<a@b.c> SMTPUTF8=yes", .malformedParameter("SMTPUTF8")),
        ("RCPT TO:<a@b.c> NOTIFY=SOMETIMES", .malformedParameter("NOTIFY")),
        ("RCPT TO:<a@b.c> NOTIFY=NEVER,SUCCESS", .malformedParameter("NOTIFY")),
        ("RCPT TO:<a@b.c> ORCPT=nosemicolon", .malformedParameter("ORCPT")),
        ("RCPT TO:<a@b.c> SIZE=10", .unknownParameter("SIZE")),
        // Keywords fold case in ASCII only: dotless i and long s are not I and S.
        ("MAIL FROM:<a@b.c> BODY=7bıt", .malformedParameter("BODY")),
        ("MAIL FROM:<a@b.c> RET=hdrſ", .malformedParameter("RET")),
        ("RCPT TO:<a@b.c> NOTIFY=ſuccess", .malformedParameter("NOTIFY")),
        ("MAIL FROM:<a@b.c> ſIZE=10", .malformedCommand),
    ]

    @Test(arguments: invalid)
    func refusesInvalidCommand(line: String, expected: SMTPSyntaxError) {
        #expect(throws: expected) { try SMTPCommand(parsing: Substring(line)) }
    }

    @Test func parsesEveryMailParameter() throws {
        let command = try SMTPCommand(parsing: "MAIL FROM:<a@b.c> SIZE=1000 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ314159+2B AUTH=<>")
        var expected = MailParameters()
        expected.declaredSize = 1000
        expected.body = .eightBitMIME
        expected.isSMTPUTF8 = true
        expected.dsnReturn = .headers
        expected.dsnEnvelopeID = "QQ314159+2B"
        #expect(command == .mail(Mailbox(localPart: "a", domain: "b.c"), expected))
    }

    @Test func parsesRecipientDSNParameters() throws {
        let command = try SMTPCommand(parsing: "RCPT TO:<a@b.c> NOTIFY=success,DELAY ORCPT=rfc822;a+40b.c")
        var expected = RecipientParameters()
        expected.notify = [.success, .delay]
        expected.originalRecipient = "rfc822;a+40b.c"
        #expect(command == .recipient(Mailbox(localPart: "a", domain: "b.c"), expected))
        #expect(expected.notify?.keyword == "SUCCESS,DELAY")
        #expect(RecipientParameters.Notify(keyword: "NEVER") == .never)
    }

    @Test func mailboxFlagsRoutingTricks() throws {
        let cases: [(String, Bool)] = [
            ("RCPT TO:<user%other@example.com>", true),
            ("RCPT TO:<user!other@example.com>", true),
            ("RCPT TO:<\"user@other\"@example.com>", true),
            ("RCPT TO:<user@example.com>", false),
        ]
        for (line, isTrick) in cases {
            guard case .recipient(let mailbox, _) = try SMTPCommand(parsing: Substring(line)) else {
                Issue.record("not a recipient: \(line)")
                continue
            }
            #expect(mailbox.hasRoutingInLocalPart == isTrick, "\(line)")
        }
    }

    @Test func xtextRoundTrips() {
        #expect(XText.decode("a+2Bb+3Dc") == "a+b=c")
        #expect(XText.encode("a+b=c d") == "a+2Bb+3Dc+20d")
        #expect(XText.isValid("abc+2B"))
        #expect(!XText.isValid("abc+2"))
        #expect(!XText.isValid("abc+zz"))
    }
}
