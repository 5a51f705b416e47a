import NIOCore
import Testing
@testable import SMTPProtocol

/// RFC 3464 delivery status notifications in RFC 6522 `multipart/report` messages.
struct DeliveryStatusNotificationTests {
    static let arrival: Int64 = 1_795_318_260  // Sun, 22 Nov 2026 03:31:00 +0000
    static let now: Int64 = arrival + 3600
    static let original = """
        Received: from client.example.org ([192.0.2.1])\r
        \tby relay.example.net (Petrel) with ESMTP id Q1; Sun, 22 Nov 2026 03:31:00 +0000\r
        From: Alice <alice@example.org>\r
        To: bob@example.com, a+b@x.test\r
        Subject: Lunch\r
        Message-ID: <m1@example.org>\r
        \r
        See you at noon.\r
        .dotted line\r

        """

    static let originalHeaderSection = Array(original.split(separator: "\r\n\r\n", maxSplits: 1)[0].utf8) + Array("\r\n\r\n".utf8)

    static func notification(
        _ recipients: [RecipientDeliveryStatus], original: ByteBuffer = ByteBuffer(string: original),
        full: Bool = false, envelopeID: String? = nil, boundary: String = "=_dsn/Q1.1795321860"
    ) -> DeliveryStatusNotification {
        DeliveryStatusNotification(
            reportingMTA: "dns; relay.example.net", envelopeID: envelopeID, arrivalSeconds: arrival,
            recipientOfReport: "alice@example.org", recipients: recipients, originalMessage: original,
            returnsFullMessage: full, messageID: "Q1.dsn@relay.example.net", dateSeconds: now, boundary: boundary
        )
    }

    static let bob = RecipientDeliveryStatus(
        finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 1, 1),
        remoteMTA: "dns; mx.example.com", diagnosticCode: "smtp; 550 5.1.1 <bob@example.com>: User unknown",
        lastAttemptSeconds: arrival + 60
    )
    static let ab = RecipientDeliveryStatus(
        finalRecipient: "a+b@x.test", originalRecipient: "rfc822;a+2Bb@x.test", action: .failed,
        status: EnhancedStatusCode(5, 2, 2), remoteMTA: "dns; mx.x.test", diagnosticCode: "smtp; 552 5.2.2 Mailbox full",
        lastAttemptSeconds: arrival + 61
    )
    static let carol = RecipientDeliveryStatus(
        finalRecipient: "carol@example.org", action: .delayed, status: EnhancedStatusCode(4, 4, 1),
        remoteMTA: "dns; mx.example.org", diagnosticCode: "smtp; 451 4.4.1 Try again later",
        lastAttemptSeconds: now - 60, willRetryUntilSeconds: arrival + 5 * 86400
    )
    static let dave = RecipientDeliveryStatus(
        finalRecipient: "dave@legacy.test", action: .relayed, status: EnhancedStatusCode(2, 0, 0),
        remoteMTA: "dns; mx.legacy.test", diagnosticCode: "smtp; 250 2.0.0 Ok: queued as 4F2A",
        lastAttemptSeconds: now - 5
    )

    /// Renders and splits a notification, checking the framing every notification must have.
    static func split(_ dsn: DeliveryStatusNotification) -> (message: MIMEEntity, parts: [MIMEEntity])? {
        let bytes = Array(dsn.render().readableBytesView)
        #expect(lineProblems(bytes) == [])
        let message = MIMEEntity(bytes)
        let parts = message.parts(boundary: dsn.boundary)
        #expect(parts?.count == 3)
        return parts.map { (message, $0) }
    }

    // MARK: - The bounce of the brief, field by field

    @Test func failedNotificationWithTwoRecipientsReturningHeaders() throws {
        let dsn = Self.notification([Self.bob, Self.ab])
        let bytes = Array(dsn.render().readableBytesView)
        #expect(lineProblems(bytes) == [])
        #expect(!dsn.requires8BitMIME)

        let message = MIMEEntity(bytes)
        let expectedFields: [(String, String)] = [
            ("From", "Mail Delivery System <MAILER-DAEMON@relay.example.net>"),
            ("To", "<alice@example.org>"),
            ("Subject", "Undelivered Mail Returned to Sender"),
            ("Date", "Sun, 22 Nov 2026 04:31:00 +0000"),
            ("Message-ID", "<Q1.dsn@relay.example.net>"),
            ("MIME-Version", "1.0"),
            ("Auto-Submitted", "auto-replied"),
            ("Content-Type", "multipart/report; report-type=delivery-status; boundary=\"=_dsn/Q1.1795321860\""),
        ]
        #expect(message.fields.map(\.name) == expectedFields.map(\.0))
        #expect(message.fields.map(\.value) == expectedFields.map(\.1))

        // One opening delimiter per part and one closing delimiter, each on a line of its own.
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.split(separator: "\r\n").filter { $0 == "--=_dsn/Q1.1795321860" }.count == 3)
        #expect(text.hasSuffix("\r\n--=_dsn/Q1.1795321860--\r\n"))

        let parts = try #require(message.parts(boundary: dsn.boundary))
        try #require(parts.count == 3)
        #expect(parts[0].field("Content-Type") == "text/plain; charset=utf-8")
        #expect(parts[1].field("Content-Type") == "message/delivery-status")
        #expect(parts[2].field("Content-Type") == "text/rfc822-headers")
        #expect(parts.allSatisfy { $0.field("Content-Transfer-Encoding") == nil })

        #expect(parts[1].bodyText == """
            Reporting-MTA: dns; relay.example.net\r
            Arrival-Date: Sun, 22 Nov 2026 03:31:00 +0000\r
            \r
            Final-Recipient: rfc822; bob@example.com\r
            Action: failed\r
            Status: 5.1.1\r
            Remote-MTA: dns; mx.example.com\r
            Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: User unknown\r
            Last-Attempt-Date: Sun, 22 Nov 2026 03:32:00 +0000\r
            \r
            Original-Recipient: rfc822; a+b@x.test\r
            Final-Recipient: rfc822; a+b@x.test\r
            Action: failed\r
            Status: 5.2.2\r
            Remote-MTA: dns; mx.x.test\r
            Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r
            Last-Attempt-Date: Sun, 22 Nov 2026 03:32:01 +0000\r

            """)

        // The header section, up to and including its empty line, and nothing of the body.
        #expect(parts[2].body == Self.originalHeaderSection)
        #expect(!parts[2].bodyText.contains("noon"))

        #expect(parts[0].bodyText == """
            This is the mail system at host relay.example.net.\r
            \r
            Your message could not be delivered to the recipients below. This is a\r
            permanent error: the mail system has given up on them.\r
            \r
            <bob@example.com>: host mx.example.com said: 550 5.1.1 <bob@example.com>:\r
                User unknown\r
            \r
            <a+b@x.test>: host mx.x.test said: 552 5.2.2 Mailbox full\r
            \r
            The header section of your message is attached. If you need help, please\r
            write to the postmaster of relay.example.net and include this report.\r

            """)
    }

    // MARK: - Kinds of notification

    struct Case: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var notification: DeliveryStatusNotification
        var subject: String
        var types: [String]
        /// The third part's body.
        var returned: [UInt8]
        var transferEncodings: [String?] = [nil, nil, nil]
        var requires8BitMIME = false
        var returnedDescription: String
    }

    static let eightBitBody = Array("Subject: Caf\r\n\r\ncaf".utf8) + [0xE9] + Array("\r\n".utf8)
    static let utf8Header = "Subject: Café\r\n\r\ncafé\r\n"

    static let cases: [Case] = [
        Case(testDescription: "bounce, RET=HDRS",
             notification: notification([bob, ab]),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"],
             returned: originalHeaderSection,
             returnedDescription: "Undelivered Message Headers"),
        Case(testDescription: "bounce, RET=FULL",
             notification: notification([bob], full: true),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "message/rfc822"],
             returned: Array(original.utf8),
             returnedDescription: "Undelivered Message"),
        Case(testDescription: "delay",
             notification: notification([carol]),
             subject: "Delayed Mail (still being retried)",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"],
             returned: originalHeaderSection,
             returnedDescription: "Delayed Message Headers"),
        Case(testDescription: "bounce and delay together",
             notification: notification([carol, bob]),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"],
             returned: originalHeaderSection,
             returnedDescription: "Undelivered Message Headers"),
        Case(testDescription: "relayed notice",
             notification: notification([dave]),
             subject: "Successful Mail Delivery Report",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"],
             returned: originalHeaderSection,
             returnedDescription: "Message Headers"),
        Case(testDescription: "8-bit body, RET=FULL",
             notification: notification([bob], original: ByteBuffer(bytes: eightBitBody), full: true),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "message/rfc822"],
             returned: eightBitBody, transferEncodings: [nil, nil, "8bit"], requires8BitMIME: true,
             returnedDescription: "Undelivered Message"),
        Case(testDescription: "8-bit body, RET=HDRS returns 7-bit headers",
             notification: notification([bob], original: ByteBuffer(bytes: eightBitBody)),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"],
             returned: Array("Subject: Caf\r\n\r\n".utf8),
             returnedDescription: "Undelivered Message Headers"),
        Case(testDescription: "UTF-8 header fields, RET=HDRS (RFC 6533 §6.3)",
             notification: notification([bob], original: ByteBuffer(string: utf8Header)),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "message/global-headers"],
             returned: Array("Subject: Café\r\n\r\n".utf8), transferEncodings: [nil, nil, "8bit"], requires8BitMIME: true,
             returnedDescription: "Undelivered Message Headers"),
        Case(testDescription: "UTF-8 header fields, RET=FULL (RFC 6532 §3.7)",
             notification: notification([bob], original: ByteBuffer(string: utf8Header), full: true),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "message/global"],
             returned: Array(utf8Header.utf8), transferEncodings: [nil, nil, "8bit"], requires8BitMIME: true,
             returnedDescription: "Undelivered Message"),
        Case(testDescription: "internationalized recipient (RFC 6533 §3)",
             notification: notification([RecipientDeliveryStatus(finalRecipient: "jürgen@bücher.test", action: .failed, status: EnhancedStatusCode(5, 1, 1))]),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/global-delivery-status", "text/rfc822-headers"],
             returned: originalHeaderSection,
             transferEncodings: ["8bit", "8bit", nil], requires8BitMIME: true,
             returnedDescription: "Undelivered Message Headers"),
        Case(testDescription: "original without a final CRLF",
             notification: notification([bob], original: ByteBuffer(string: "Subject: x\r\n\r\nno end"), full: true),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "message/rfc822"],
             returned: Array("Subject: x\r\n\r\nno end\r\n".utf8),
             returnedDescription: "Undelivered Message"),
        Case(testDescription: "original with only a header section",
             notification: notification([bob], original: ByteBuffer(string: "Subject: x\r\nFrom: y@z\r\n")),
             subject: "Undelivered Mail Returned to Sender",
             types: ["text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"],
             returned: Array("Subject: x\r\nFrom: y@z\r\n".utf8),
             returnedDescription: "Undelivered Message Headers"),
    ]

    @Test(arguments: cases)
    func rendersThreePartsOfTheRightTypes(_ testCase: Case) throws {
        let dsn = testCase.notification
        let (message, parts) = try #require(Self.split(dsn))
        try #require(parts.count == 3)
        #expect(message.field("Subject") == testCase.subject)
        #expect(message.field("Content-Type") == "multipart/report; report-type=\(testCase.types[1].dropFirst(8)); boundary=\"\(dsn.boundary)\"")
        #expect(parts.map { $0.field("Content-Type") } == testCase.types)
        #expect(parts.map { $0.field("Content-Transfer-Encoding") } == testCase.transferEncodings)
        #expect(message.field("Content-Transfer-Encoding") == (testCase.requires8BitMIME ? "8bit" : nil))
        #expect(dsn.requires8BitMIME == testCase.requires8BitMIME)
        #expect(parts[2].body == testCase.returned)
        #expect(parts[2].field("Content-Description") == testCase.returnedDescription)
        // A part is 7-bit unless it says otherwise.
        for (part, encoding) in zip(parts, testCase.transferEncodings) where encoding == nil {
            #expect(part.body.allSatisfy { $0 < 0x80 })
        }
    }

    @Test func fullReturnIncludesTheWholeBody() throws {
        let (_, parts) = try #require(Self.split(Self.notification([Self.bob], full: true)))
        #expect(parts[2].bodyText == Self.original)
        #expect(parts[2].bodyText.contains("See you at noon.\r\n.dotted line\r\n"))
        #expect(parts[0].bodyText.contains("Your message is attached."))
    }

    @Test func delayReportsActionRetryDateAndHowLongItWillKeepTrying() throws {
        let (message, parts) = try #require(Self.split(Self.notification([Self.carol])))
        #expect(message.field("Subject") == "Delayed Mail (still being retried)")
        let status = parts[1].bodyText
        #expect(status.contains("\r\nAction: delayed\r\n"))
        #expect(status.contains("\r\nStatus: 4.4.1\r\n"))
        #expect(status.contains("\r\nWill-Retry-Until: Fri, 27 Nov 2026 03:31:00 +0000\r\n"))
        #expect(parts[0].bodyText.contains("""
            <carol@example.org>: host mx.example.org said: 451 4.4.1 Try again later\r
                The mail system will keep trying until Fri, 27 Nov 2026 03:31:00 +0000,\r
                for another 4 days 23 hours.\r

            """))
    }

    @Test func relayedNotice() throws {
        let (_, parts) = try #require(Self.split(Self.notification([Self.dave])))
        #expect(parts[1].bodyText.hasSuffix("""
            \r
            Final-Recipient: rfc822; dave@legacy.test\r
            Action: relayed\r
            Status: 2.0.0\r
            Remote-MTA: dns; mx.legacy.test\r
            Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4F2A\r
            Last-Attempt-Date: Sun, 22 Nov 2026 04:30:55 +0000\r

            """))
        #expect(parts[0].bodyText.contains("does not send delivery reports"))
        #expect(!parts[0].bodyText.contains("could not be delivered"))
    }

    // MARK: - Subjects

    static let subjects: [([RecipientDeliveryStatus.Action], String)] = [
        ([.failed], "Undelivered Mail Returned to Sender"),
        ([.delayed, .failed], "Undelivered Mail Returned to Sender"),
        ([.delivered, .failed], "Undelivered Mail Returned to Sender"),
        ([.delayed], "Delayed Mail (still being retried)"),
        ([.delayed, .delayed], "Delayed Mail (still being retried)"),
        ([.delivered, .delayed], "Delayed Mail (still being retried)"),
        ([.delivered], "Successful Mail Delivery Report"),
        ([.relayed], "Successful Mail Delivery Report"),
        ([.expanded, .delivered], "Successful Mail Delivery Report"),
    ]

    @Test(arguments: subjects)
    func subjectFollowsTheWorstAction(actions: [RecipientDeliveryStatus.Action], subject: String) throws {
        let recipients = actions.enumerated().map { index, action in
            RecipientDeliveryStatus(finalRecipient: "r\(index)@example.com", action: action,
                                    status: EnhancedStatusCode(action == .failed ? 5 : action == .delayed ? 4 : 2, 0, 0))
        }
        let (message, _) = try #require(Self.split(Self.notification(recipients)))
        #expect(message.field("Subject") == subject)
    }

    // MARK: - Per-message fields

    static let envelopeIDs: [(String?, String?)] = [
        (nil, nil),
        ("", nil),
        ("QQ314159", "QQ314159"),
        ("a+2Bb+3Dc", "a+b=c"),
        // An encoded line break must not start a field of its own.
        ("x+0D+0AReporting-MTA:+20dns;+20evil.test", "x Reporting-MTA: dns; evil.test"),
    ]

    @Test(arguments: envelopeIDs)
    func originalEnvelopeIDIsDecoded(envelopeID: String?, expected: String?) throws {
        let (_, parts) = try #require(Self.split(Self.notification([Self.bob], envelopeID: envelopeID)))
        let perMessage = MIMEEntity(parts[1].body)  // the per-message fields parse as a header section
        #expect(perMessage.field("Original-Envelope-Id") == expected)
        #expect(perMessage.field("Reporting-MTA") == "dns; relay.example.net")
        #expect(perMessage.fields.map(\.name) == (expected == nil ? [] : ["Original-Envelope-Id"]) + ["Reporting-MTA", "Arrival-Date"])
    }

    // MARK: - Per-recipient fields

    static let perMessage = "Reporting-MTA: dns; relay.example.net\r\nArrival-Date: Sun, 22 Nov 2026 03:31:00 +0000\r\n\r\n"

    static let recipientBlocks: [(String, RecipientDeliveryStatus, String)] = [
        ("minimal", RecipientDeliveryStatus(finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 4, 4)),
         "Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.4.4\r\n"),
        ("ORCPT decoded", RecipientDeliveryStatus(finalRecipient: "a+b@x.test", originalRecipient: "rfc822;a+2Bb@x.test", action: .delivered, status: EnhancedStatusCode(2, 0, 0)),
         "Original-Recipient: rfc822; a+b@x.test\r\nFinal-Recipient: rfc822; a+b@x.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n"),
        ("ORCPT with an encoded line break", RecipientDeliveryStatus(finalRecipient: "x@x.test", originalRecipient: "rfc822;x+0D+0AAction:+20delivered@x.test", action: .failed, status: EnhancedStatusCode(5, 1, 1)),
         "Original-Recipient: rfc822; x Action: delivered@x.test\r\nFinal-Recipient: rfc822; x@x.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"),
        ("path brackets dropped, types added", RecipientDeliveryStatus(finalRecipient: "<bob@example.com>", action: .failed, status: EnhancedStatusCode(4, 4, 2), remoteMTA: "mx.example.com", diagnosticCode: "421 4.4.2 Connection timed out"),
         "Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 4.4.2\r\nRemote-MTA: dns; mx.example.com\r\nDiagnostic-Code: smtp; 421 4.4.2 Connection timed out\r\n"),
        ("typed values kept", RecipientDeliveryStatus(finalRecipient: "rfc822;bob@example.com", action: .failed, status: EnhancedStatusCode(5, 3, 0), diagnosticCode: "X-Petrel;no MX and no address"),
         "Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.3.0\r\nDiagnostic-Code: X-Petrel; no MX and no address\r\n"),
        ("multi-line reply with injected field", RecipientDeliveryStatus(finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 7, 1), diagnosticCode: "smtp; 550-5.7.1 Rejected\r\n550 5.7.1 Policy\r\nAction: delivered\r\n\r\n--=_dsn/Q1.1795321860--"),
         "Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.7.1\r\nDiagnostic-Code: smtp; 550-5.7.1 Rejected 550 5.7.1 Policy Action: delivered\r\n --=_dsn/Q1.1795321860--\r\n"),
        ("bare LF, bare CR, NUL and tab", RecipientDeliveryStatus(finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 0, 0), diagnosticCode: "smtp; 554 a\nb\rc\u{0}d\te"),
         "Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: smtp; 554 a b c d e\r\n"),
        ("delayed with retry dates", RecipientDeliveryStatus(finalRecipient: "carol@example.org", action: .delayed, status: EnhancedStatusCode(4, 2, 2), lastAttemptSeconds: 0, willRetryUntilSeconds: 86400),
         "Final-Recipient: rfc822; carol@example.org\r\nAction: delayed\r\nStatus: 4.2.2\r\nLast-Attempt-Date: Thu, 1 Jan 1970 00:00:00 +0000\r\nWill-Retry-Until: Fri, 2 Jan 1970 00:00:00 +0000\r\n"),
        ("long diagnostic folded", RecipientDeliveryStatus(finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 7, 1), diagnosticCode: "smtp; 550 5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.example; https://www.spamhaus.example/query/ip/192.0.2.1"),
         "Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.7.1\r\nDiagnostic-Code: smtp; 550 5.7.1 Service unavailable; client host [192.0.2.1]\r\n blocked using zen.spamhaus.example;\r\n https://www.spamhaus.example/query/ip/192.0.2.1\r\n"),
        ("internationalized address", RecipientDeliveryStatus(finalRecipient: "jürgen+x@bücher.test", action: .failed, status: EnhancedStatusCode(5, 1, 1)),
         "Final-Recipient: utf-8; jürgen\\x{2B}x@bücher.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"),
        ("empty optional values left out", RecipientDeliveryStatus(finalRecipient: "bob@example.com", originalRecipient: "", action: .failed, status: EnhancedStatusCode(5, 0, 0), remoteMTA: " ", diagnosticCode: "\r\n"),
         "Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.0.0\r\n"),
    ]

    @Test(arguments: recipientBlocks)
    func rendersRecipientFields(name: String, recipient: RecipientDeliveryStatus, expected: String) throws {
        let (_, parts) = try #require(Self.split(Self.notification([recipient])))
        #expect(parts[1].bodyText == Self.perMessage + expected, "\(name)")
    }

    @Test func foldsADiagnosticWithoutSpacesWithinTheLineLimit() throws {
        let word = String(repeating: "x", count: 2500)
        let recipient = RecipientDeliveryStatus(finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 0, 0),
                                                diagnosticCode: "smtp; 550 " + word + " end")
        let (_, parts) = try #require(Self.split(Self.notification([recipient])))  // checks every line's length
        let field = try #require(MIMEEntity(Array(parts[1].bodyText.split(separator: "\r\n\r\n")[1].utf8)).field("Diagnostic-Code"))
        #expect(field.filter { $0 == "x" }.count == 2500)
        #expect(field.hasPrefix("smtp; 550 xxx") && field.hasSuffix("x end"))
    }

    // MARK: - The explanation

    static let entries: [(RecipientDeliveryStatus, String)] = [
        (bob, "<bob@example.com>: host mx.example.com said: 550 5.1.1 <bob@example.com>:\r\n    User unknown\r\n\r\n"),
        (RecipientDeliveryStatus(finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 4, 4)),
         "<bob@example.com>: 5.4.4 (unable to route)\r\n\r\n"),
        (RecipientDeliveryStatus(finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 1, 99), remoteMTA: "dns; mx.example.com"),
         "<bob@example.com>: host mx.example.com: 5.1.99 (other address status)\r\n\r\n"),
        (RecipientDeliveryStatus(finalRecipient: "bob@example.com", action: .failed, status: EnhancedStatusCode(5, 4, 4), diagnosticCode: "X-Petrel; no MX or address records for example.com"),
         "<bob@example.com>: no MX or address records for example.com\r\n\r\n"),
        (RecipientDeliveryStatus(finalRecipient: "carol@example.org", action: .delayed, status: EnhancedStatusCode(4, 4, 1), willRetryUntilSeconds: now + 90 * 60),
         "<carol@example.org>: 4.4.1 (no answer from host)\r\n    The mail system will keep trying until Sun, 22 Nov 2026 06:01:00 +0000,\r\n    for another 1 hour 30 minutes.\r\n\r\n"),
        (RecipientDeliveryStatus(finalRecipient: "dave@example.org", action: .delivered, status: EnhancedStatusCode(2, 0, 0), remoteMTA: "mx.example.org"),
         "<dave@example.org>: delivered via host mx.example.org\r\n\r\n"),
        (RecipientDeliveryStatus(finalRecipient: "list@example.org", action: .expanded, status: EnhancedStatusCode(2, 0, 0)),
         "<list@example.org>: expanded\r\n\r\n"),
        // At expiry the verdict (5.4.7) says more than the last reply, which is quoted as evidence.
        (RecipientDeliveryStatus(finalRecipient: "erin@example.org", action: .failed, status: EnhancedStatusCode(5, 4, 7),
                                 remoteMTA: "dns; mx.example.org", diagnosticCode: "smtp; 451 4.3.0 Try later"),
         "<erin@example.org>: delivery time expired (5.4.7); last, host mx.example.org\r\n    said: 451 4.3.0 Try later\r\n\r\n"),
        (RecipientDeliveryStatus(finalRecipient: "erin@example.org", action: .failed, status: EnhancedStatusCode(5, 4, 7),
                                 diagnosticCode: "X-Petrel; connect to mx[192.0.2.1]:25: Connection refused"),
         "<erin@example.org>: delivery time expired (5.4.7); last, connect to\r\n    mx[192.0.2.1]:25: Connection refused\r\n\r\n"),
        // A delay warning after a 554 greeting: the verdict is temporary, the reply permanent.
        (RecipientDeliveryStatus(finalRecipient: "erin@example.org", action: .delayed, status: EnhancedStatusCode(4, 7, 1),
                                 remoteMTA: "dns; mx.example.org", diagnosticCode: "smtp; 554 5.7.1 Go away"),
         "<erin@example.org>: delivery not authorized, message refused (4.7.1); last,\r\n    host mx.example.org said: 554 5.7.1 Go away\r\n\r\n"),
    ]

    @Test(arguments: entries)
    func explainsEachRecipient(recipient: RecipientDeliveryStatus, expected: String) {
        #expect(DSNExplanation.entry(for: recipient, reportSeconds: Self.now) == expected)
    }

    static let durations: [(Int64, String)] = [
        (0, "less than a minute"), (59, "less than a minute"), (60, "1 minute"), (3599, "59 minutes"),
        (3600, "1 hour"), (3660, "1 hour 1 minute"), (7200 + 120, "2 hours 2 minutes"),
        (86400, "1 day"), (86400 + 3600, "1 day 1 hour"), (5 * 86400 - 3600, "4 days 23 hours"),
    ]

    @Test(arguments: durations)
    func formatsDurations(seconds: Int64, expected: String) {
        #expect(DSNExplanation.duration(seconds) == expected)
    }

    // MARK: - The original message

    static let headerSections: [(String, String)] = [
        ("A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n\r\n"),
        ("A: 1\r\n folded\r\n\r\nbody\r\n\r\nmore\r\n", "A: 1\r\n folded\r\n\r\n"),
        ("A: 1\r\n\r\n", "A: 1\r\n\r\n"),
        ("\r\nbody only\r\n", "\r\n"),
        ("A: 1\r\nB: 2\r\n", "A: 1\r\nB: 2\r\n"),
        ("A: 1\r\nB: 2", "A: 1\r\nB: 2"),
        ("A: 1\n\nbody\r\n", "A: 1\n\nbody\r\n"),  // bare LFs do not end it: the text is CRLF-framed
        ("", ""),
    ]

    @Test(arguments: headerSections)
    func findsTheHeaderSection(message: String, expected: String) {
        #expect(String(buffer: HeaderSectionScanner.headerSection(of: ByteBuffer(string: message))) == expected)
        // The same from a buffer whose readable bytes do not start at zero.
        var buffer = ByteBuffer(string: "ignored\r\n\r\n" + message)
        buffer.moveReaderIndex(forwardBy: 11)
        #expect(String(buffer: HeaderSectionScanner.headerSection(of: buffer)) == expected)
    }

    static let boundaries: [(String, String, Bool, Bool)] = [
        ("=_dsn/Q1.1795321860", original, false, true),
        ("", original, false, false),
        (String(repeating: "b", count: 70), original, false, true),
        (String(repeating: "b", count: 71), original, false, false),
        ("ends in space ", original, false, false),
        ("quote\"d", original, false, false),
        ("ü", original, false, false),
        ("noon", "Subject: x\r\n\r\n--noon\r\n", true, false),
        ("noon", "Subject: x\r\n\r\n--noon\r\n", false, true),  // only the header section is returned
        ("noon", "Subject: --noon\r\n\r\n", false, false),
    ]

    @Test(arguments: boundaries)
    func checksTheBoundary(boundary: String, original: String, full: Bool, usable: Bool) {
        let dsn = Self.notification([Self.bob], original: ByteBuffer(string: original), full: full, boundary: boundary)
        #expect(dsn.isBoundaryUsable == usable)
    }
}
