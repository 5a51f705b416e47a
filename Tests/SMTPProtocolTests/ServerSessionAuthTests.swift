import NIOCore
import Testing
@testable import SMTPProtocol

/// STARTTLS (RFC 3207) and SMTP AUTH (RFC 4954, PLAIN of RFC 4616, LOGIN) on the server state machine,
/// driven by transcripts. Besides command lines, a transcript holds the events the driver reports:
///
/// - `<tls>`: the TLS handshake finished (``ServerSession/tlsEstablished(description:)``); no reply;
/// - `<ok>`: the credentials were right (``ServerSession/authenticated(user:allowedSenders:)``);
/// - `<fail>`: they were wrong; `<throttled>`: the client's address is throttled; `<busy>`: the server's
///   password checks are saturated;
/// - `<overlong>`: the framer met a line longer than any it takes.
///
/// Replies read `code enhanced`, `334 <challenge>`, `... starttls` for the STARTTLS go-ahead,
/// `... close` when the connection is to be closed, and `verify user:password` when the session asks the
/// driver to check credentials.
struct ServerSessionAuthTests {
    static let tlsDescription = "TLSv1.3 TLS_AES_256_GCM_SHA384"

    // base64 of the SASL responses used below.
    static let plainAppSecret = "AGFwcABzZWNyZXQ="               // "\0app\0secret"
    static let plainSameAuthzid = "YXBwAGFwcABzZWNyZXQ="         // "app\0app\0secret"
    static let plainOtherAuthzid = "YWRtaW4AYXBwAHNlY3JldA=="    // "admin\0app\0secret"
    static let plainTwoFields = "YXBwAHNlY3JldA=="               // "app\0secret"
    static let plainEmptyUser = "AABzZWNyZXQ="                   // "\0\0secret"
    static let plainNotUTF8 = "AGFwcP8Ac2VjcmV0"                 // "\0app\u{FF}\0secret" (0xFF is not UTF-8)
    static let app = "YXBw"                                      // "app"
    static let secret = "c2VjcmV0"                               // "secret"

    enum Listener: Sendable {
        /// Port 25 style: STARTTLS offered, AUTH optional.
        case relay
        /// RFC 6409: STARTTLS offered, AUTH required before MAIL.
        case submission
        /// RFC 8314: implicit TLS, AUTH required.
        case submissions
    }

    static func configuration(_ listener: Listener, tls: Bool = true, users: Bool = true) -> ServerSessionConfiguration {
        ServerSessionConfiguration(
            hostname: "relay.test", maximumMessageSize: 1000, maximumErrors: 10,
            isSTARTTLSAvailable: tls && listener != .submissions, isAuthAvailable: users,
            requiresAuthentication: listener != .relay
        )
    }

    static func session(_ listener: Listener = .relay, tls: Bool = true, users: Bool = true, mayRelay: Bool = false) -> ServerSession {
        ServerSession(configuration: configuration(listener, tls: tls, users: users), clientAddress: "192.0.2.9",
                      relayPolicy: RelayPolicy(clientMayRelay: mayRelay, relayDomains: ["ours.test"]))
    }

    static func describe(_ action: ServerSession.Action) -> String {
        switch action {
        case .reply(let reply), .beginData(let reply):
            if reply.code == 334 { return "334 \(reply.lines.joined())" }
            return [String(reply.code), reply.enhancedCode?.description].compactMap { $0 }.joined(separator: " ")
        case .replyAndClose(let reply):
            return [String(reply.code), reply.enhancedCode?.description, "close"].compactMap { $0 }.joined(separator: " ")
        case .startTLS(let reply):
            return "\(reply.code) \(reply.enhancedCode!) starttls"
        case .enqueue:
            return "enqueue"
        case .verifyCredentials(let user, let password):
            return "verify \(user):\(password)"
        }
    }

    /// Feeds the lines and events; one entry per line, `-` for `<tls>` (which has no reply).
    static func run(_ lines: [String], session: inout ServerSession, allowedSenders: [String] = []) -> [String] {
        lines.map { line in
            switch line {
            case "<tls>":
                session.tlsEstablished(description: tlsDescription)
                return "-"
            case "<ok>":
                return describe(session.authenticated(user: "app", allowedSenders: allowedSenders))
            case "<fail>":
                return describe(session.authenticationFailed())
            case "<throttled>":
                return describe(session.authenticationFailed(throttled: true))
            case "<busy>":
                return describe(session.authenticationUnavailable())
            case "<overlong>":
                return describe(session.receiveOverlongLine())
            default:
                return describe(session.receive(line: ByteBuffer(string: line)))
            }
        }
    }

    struct Transcript: Sendable, CustomTestStringConvertible {
        var name: String
        var listener: Listener = .relay
        var tls = true
        var users = true
        var mayRelay = false
        var allowedSenders: [String] = []
        var lines: [String]
        var replies: [String]
        var testDescription: String { name }
    }

    /// The opening of most transcripts: EHLO, STARTTLS, the handshake, EHLO again.
    static let secured = ["EHLO c", "STARTTLS", "<tls>", "EHLO c"]
    static let securedReplies = ["250", "220 2.0.0 starttls", "-", "250"]
    /// ... then a successful AUTH PLAIN.
    static let authenticated = secured + ["AUTH PLAIN \(plainAppSecret)", "<ok>"]
    static let authenticatedReplies = securedReplies + ["verify app:secret", "235 2.7.0"]

    static let transcripts: [Transcript] = [
        // STARTTLS (RFC 3207)
        Transcript(name: "STARTTLS, then a new EHLO", lines: secured + ["MAIL FROM:<a@b.test>"],
                   replies: securedReplies + ["250 2.1.0"]),
        Transcript(name: "STARTTLS without EHLO is allowed", lines: ["STARTTLS", "<tls>", "EHLO c"],
                   replies: ["220 2.0.0 starttls", "-", "250"]),
        Transcript(name: "STARTTLS inside a transaction", lines: ["EHLO c", "MAIL FROM:<a@b.test>", "STARTTLS"],
                   replies: ["250", "250 2.1.0", "503 5.5.1"]),
        Transcript(name: "STARTTLS twice", lines: secured + ["STARTTLS"], replies: securedReplies + ["503 5.5.1"]),
        Transcript(name: "STARTTLS without a certificate", tls: false, lines: ["EHLO c", "STARTTLS"], replies: ["250", "502 5.5.1"]),
        Transcript(name: "STARTTLS with a parameter", lines: ["EHLO c", "STARTTLS now"], replies: ["250", "501 5.5.4"]),
        Transcript(name: "STARTTLS is not offered on implicit TLS", listener: .submissions,
                   lines: ["<tls>", "EHLO c", "STARTTLS"], replies: ["-", "250", "502 5.5.1"]),
        Transcript(name: "the handshake forgets the greeting (RFC 3207 §4.2)",
                   lines: ["EHLO c", "STARTTLS", "<tls>", "MAIL FROM:<a@b.test>", "RCPT TO:<x@ours.test>", "EHLO c", "MAIL FROM:<a@b.test>"],
                   replies: ["250", "220 2.0.0 starttls", "-", "503 5.5.1", "503 5.5.1", "250", "250 2.1.0"]),
        Transcript(name: "a finished transaction does not survive the handshake",
                   lines: ["EHLO c", "MAIL FROM:<a@b.test>", "RSET", "STARTTLS", "<tls>", "EHLO c", "RCPT TO:<x@ours.test>"],
                   replies: ["250", "250 2.1.0", "250 2.0.0", "220 2.0.0 starttls", "-", "250", "503 5.5.1"]),

        // AUTH PLAIN (RFC 4616)
        Transcript(name: "AUTH PLAIN with an initial response", lines: authenticated + ["MAIL FROM:<a@b.test>"],
                   replies: authenticatedReplies + ["250 2.1.0"]),
        Transcript(name: "AUTH PLAIN after the empty 334 challenge", lines: secured + ["AUTH PLAIN", plainAppSecret, "<ok>"],
                   replies: securedReplies + ["334 ", "verify app:secret", "235 2.7.0"]),
        Transcript(name: "AUTH plain: the mechanism name is case-insensitive", lines: secured + ["auth plain \(plainAppSecret)"],
                   replies: securedReplies + ["verify app:secret"]),
        Transcript(name: "AUTH PLAIN with the authzid equal to the user", lines: secured + ["AUTH PLAIN \(plainSameAuthzid)"],
                   replies: securedReplies + ["verify app:secret"]),
        Transcript(name: "AUTH PLAIN with another authzid is refused", lines: secured + ["AUTH PLAIN \(plainOtherAuthzid)"],
                   replies: securedReplies + ["501 5.5.2"]),
        Transcript(name: "AUTH PLAIN with two fields", lines: secured + ["AUTH PLAIN \(plainTwoFields)"],
                   replies: securedReplies + ["501 5.5.2"]),
        Transcript(name: "AUTH PLAIN with an empty user", lines: secured + ["AUTH PLAIN \(plainEmptyUser)"],
                   replies: securedReplies + ["501 5.5.2"]),
        Transcript(name: "AUTH PLAIN that is not UTF-8", lines: secured + ["AUTH PLAIN \(plainNotUTF8)"],
                   replies: securedReplies + ["501 5.5.2"]),
        Transcript(name: "AUTH PLAIN with an empty initial response (=)", lines: secured + ["AUTH PLAIN ="],
                   replies: securedReplies + ["501 5.5.2"]),
        Transcript(name: "AUTH PLAIN with bad base64", lines: secured + ["AUTH PLAIN !!!!", "AUTH PLAIN AGFwcABzZWNyZXQ", "NOOP"],
                   replies: securedReplies + ["501 5.5.2", "501 5.5.2", "250 2.0.0"]),
        Transcript(name: "AUTH PLAIN with bad base64 after the challenge", lines: secured + ["AUTH PLAIN", "not base64", "NOOP"],
                   replies: securedReplies + ["334 ", "501 5.5.2", "250 2.0.0"]),
        Transcript(name: "* cancels AUTH PLAIN", lines: secured + ["AUTH PLAIN", "*", "NOOP", "AUTH PLAIN \(plainAppSecret)"],
                   replies: securedReplies + ["334 ", "501 5.7.0", "250 2.0.0", "verify app:secret"]),

        Transcript(name: "an over-long SASL response (once a crash)", lines: secured + ["AUTH PLAIN", "<overlong>", "NOOP", "AUTH PLAIN \(plainAppSecret)"],
                   replies: securedReplies + ["334 ", "501 5.5.2", "250 2.0.0", "verify app:secret"]),
        Transcript(name: "an over-long AUTH command", lines: secured + ["<overlong>", "NOOP"],
                   replies: securedReplies + ["500 5.5.2", "250 2.0.0"]),

        // AUTH LOGIN
        Transcript(name: "AUTH LOGIN in two steps", lines: secured + ["AUTH LOGIN", app, secret, "<ok>", "MAIL FROM:<a@b.test>"],
                   replies: securedReplies + ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "verify app:secret", "235 2.7.0", "250 2.1.0"]),
        Transcript(name: "AUTH LOGIN with the user as initial response", lines: secured + ["AUTH LOGIN \(app)", secret],
                   replies: securedReplies + ["334 UGFzc3dvcmQ6", "verify app:secret"]),
        Transcript(name: "* cancels AUTH LOGIN at the user", lines: secured + ["AUTH LOGIN", "*", "NOOP"],
                   replies: securedReplies + ["334 VXNlcm5hbWU6", "501 5.7.0", "250 2.0.0"]),
        Transcript(name: "* cancels AUTH LOGIN at the password", lines: secured + ["AUTH LOGIN", app, "*", "MAIL FROM:<a@b.test>"],
                   replies: securedReplies + ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "501 5.7.0", "250 2.1.0"]),
        Transcript(name: "an over-long AUTH LOGIN password", lines: secured + ["AUTH LOGIN", app, "<overlong>", "NOOP"],
                   replies: securedReplies + ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "501 5.5.2", "250 2.0.0"]),
        Transcript(name: "AUTH LOGIN with bad base64", lines: secured + ["AUTH LOGIN", "YXBw=", "AUTH LOGIN", app, "c2VjcmV0!", "NOOP"],
                   replies: securedReplies + ["334 VXNlcm5hbWU6", "501 5.5.2", "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "501 5.5.2", "250 2.0.0"]),

        // When AUTH may be used
        Transcript(name: "AUTH in plaintext: 538 5.7.11", lines: ["EHLO c", "AUTH PLAIN \(plainAppSecret)", "AUTH LOGIN"],
                   replies: ["250", "538 5.7.11", "538 5.7.11"]),
        Transcript(name: "AUTH in plaintext on submission: 538 5.7.11", listener: .submission,
                   lines: ["EHLO c", "AUTH PLAIN \(plainAppSecret)"], replies: ["250", "538 5.7.11"]),
        Transcript(name: "AUTH without users", users: false, lines: secured + ["AUTH PLAIN \(plainAppSecret)"],
                   replies: securedReplies + ["502 5.5.1"]),
        Transcript(name: "AUTH needs EHLO after the handshake", lines: ["EHLO c", "STARTTLS", "<tls>", "AUTH PLAIN \(plainAppSecret)"],
                   replies: ["250", "220 2.0.0 starttls", "-", "503 5.5.1"]),
        Transcript(name: "AUTH after HELO", lines: ["STARTTLS", "<tls>", "HELO c", "AUTH PLAIN \(plainAppSecret)"],
                   replies: ["220 2.0.0 starttls", "-", "250", "503 5.5.1"]),
        Transcript(name: "AUTH twice", lines: authenticated + ["AUTH PLAIN \(plainAppSecret)"],
                   replies: authenticatedReplies + ["503 5.5.1"]),
        Transcript(name: "AUTH inside a transaction", mayRelay: true, lines: secured + ["MAIL FROM:<a@b.test>", "AUTH PLAIN \(plainAppSecret)"],
                   replies: securedReplies + ["250 2.1.0", "503 5.5.1"]),
        Transcript(name: "an unknown mechanism", lines: secured + ["AUTH CRAM-MD5", "AUTH"],
                   replies: securedReplies + ["504 5.5.4", "501 5.5.4"]),

        // Submission (RFC 6409 §4.3, RFC 8314)
        Transcript(name: "submission: MAIL before AUTH gets 530", listener: .submission,
                   lines: ["EHLO c", "MAIL FROM:<a@b.test>"] + Array(secured.dropFirst()) + ["MAIL FROM:<a@b.test>", "AUTH PLAIN \(plainAppSecret)", "<ok>", "MAIL FROM:<a@b.test>"],
                   replies: ["250", "530 5.7.0"] + Array(securedReplies.dropFirst()) + ["530 5.7.0", "verify app:secret", "235 2.7.0", "250 2.1.0"]),
        Transcript(name: "submissions: AUTH right after the implicit handshake", listener: .submissions,
                   lines: ["<tls>", "EHLO c", "MAIL FROM:<a@b.test>", "AUTH LOGIN", app, secret, "<ok>", "MAIL FROM:<a@b.test>", "RCPT TO:<x@far.test>"],
                   replies: ["-", "250", "530 5.7.0", "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "verify app:secret", "235 2.7.0", "250 2.1.0", "250 2.1.5"]),
        Transcript(name: "relay listener: MAIL without AUTH is fine", lines: secured + ["MAIL FROM:<a@b.test>", "RCPT TO:<x@ours.test>"],
                   replies: securedReplies + ["250 2.1.0", "250 2.1.5"]),

        // Relaying and senders
        Transcript(name: "an authenticated client relays from anywhere", mayRelay: false,
                   lines: authenticated + ["MAIL FROM:<a@b.test>", "RCPT TO:<x@far.test>", "RCPT TO:<y@[192.0.2.1]>"],
                   replies: authenticatedReplies + ["250 2.1.0", "250 2.1.5", "250 2.1.5"]),
        Transcript(name: "TLS alone does not open the relay", mayRelay: false,
                   lines: secured + ["MAIL FROM:<a@b.test>", "RCPT TO:<x@far.test>"],
                   replies: securedReplies + ["250 2.1.0", "550 5.7.1"]),
        Transcript(name: "allowed senders: an address", allowedSenders: ["app@example.com"],
                   lines: authenticated + ["MAIL FROM:<other@example.com>", "MAIL FROM:<app@example.org>", "MAIL FROM:<>",
                                           "MAIL FROM:<APP@Example.COM>", "RSET", "MAIL FROM:<app@example.com>"],
                   replies: authenticatedReplies + ["553 5.7.1", "553 5.7.1", "553 5.7.1", "250 2.1.0", "250 2.0.0", "250 2.1.0"]),
        Transcript(name: "allowed senders: a domain", allowedSenders: ["app@example.com", "@Example.org"],
                   lines: authenticated + ["MAIL FROM:<x@sub.example.org>", "MAIL FROM:<x@notexample.org>", "MAIL FROM:<x@example.org.evil.test>",
                                           "MAIL FROM:<\"@example.org\"@evil.test>", "MAIL FROM:<anyone@EXAMPLE.org>", "RSET", "MAIL FROM:<app@example.com>"],
                   replies: authenticatedReplies + ["553 5.7.1", "553 5.7.1", "553 5.7.1", "553 5.7.1", "250 2.1.0", "250 2.0.0", "250 2.1.0"]),
        Transcript(name: "allowed senders do not apply without AUTH", allowedSenders: ["app@example.com"],
                   lines: secured + ["MAIL FROM:<other@example.com>"], replies: securedReplies + ["250 2.1.0"]),

        // Failures and brute force
        Transcript(name: "a wrong password: 535 5.7.8, and the session goes on",
                   lines: secured + ["AUTH PLAIN \(plainAppSecret)", "<fail>", "NOOP", "AUTH LOGIN", app, secret, "<ok>"],
                   replies: securedReplies + ["verify app:secret", "535 5.7.8", "250 2.0.0", "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "verify app:secret", "235 2.7.0"]),
        Transcript(name: "three failures: 421 and close",
                   lines: secured + ["AUTH PLAIN \(plainAppSecret)", "<fail>", "AUTH PLAIN \(plainAppSecret)", "<fail>", "AUTH PLAIN \(plainAppSecret)", "<fail>"],
                   replies: securedReplies + ["verify app:secret", "535 5.7.8", "verify app:secret", "535 5.7.8", "verify app:secret", "421 4.7.0 close"]),
        Transcript(name: "a throttled address: 454 4.7.0, and it counts as a failure",
                   lines: secured + ["AUTH PLAIN \(plainAppSecret)", "<throttled>", "AUTH PLAIN \(plainAppSecret)", "<throttled>", "AUTH PLAIN \(plainAppSecret)", "<throttled>"],
                   replies: securedReplies + ["verify app:secret", "454 4.7.0", "verify app:secret", "454 4.7.0", "verify app:secret", "421 4.7.0 close"]),
        Transcript(name: "saturated password checks: 454 4.7.0, not counted as failures",
                   lines: secured + ["AUTH PLAIN \(plainAppSecret)", "<busy>", "AUTH PLAIN \(plainAppSecret)", "<busy>", "AUTH PLAIN \(plainAppSecret)", "<busy>",
                                     "AUTH PLAIN \(plainAppSecret)", "<ok>"],
                   replies: securedReplies + ["verify app:secret", "454 4.7.0", "verify app:secret", "454 4.7.0", "verify app:secret", "454 4.7.0",
                                              "verify app:secret", "235 2.7.0"]),
        Transcript(name: "cancelled and malformed exchanges are not failed logins",
                   lines: secured + ["AUTH PLAIN", "*", "AUTH PLAIN !!!!", "AUTH PLAIN", "*", "AUTH PLAIN \(plainAppSecret)", "<fail>", "AUTH PLAIN \(plainAppSecret)", "<fail>", "NOOP"],
                   replies: securedReplies + ["334 ", "501 5.7.0", "501 5.5.2", "334 ", "501 5.7.0", "verify app:secret", "535 5.7.8", "verify app:secret", "535 5.7.8", "250 2.0.0"]),
    ]

    @Test(arguments: transcripts)
    func followsTranscript(_ transcript: Transcript) {
        var session = Self.session(transcript.listener, tls: transcript.tls, users: transcript.users, mayRelay: transcript.mayRelay)
        #expect(Self.run(transcript.lines, session: &session, allowedSenders: transcript.allowedSenders) == transcript.replies)
    }

    // MARK: - What EHLO offers

    static func ehloKeywords(_ session: inout ServerSession) -> [String] {
        guard case .reply(let reply) = session.receive(line: ByteBuffer(string: "EHLO c")), reply.code == 250 else {
            Issue.record("EHLO was refused")
            return []
        }
        return Array(reply.lines.dropFirst())
    }

    @Test func offersSTARTTLSBeforeTLSAndAUTHOnlyAfter() {
        var session = Self.session()
        let before = Self.ehloKeywords(&session)
        #expect(before.contains("STARTTLS"))
        #expect(!before.contains { $0.hasPrefix("AUTH") })
        #expect(Self.run(["STARTTLS", "<tls>"], session: &session) == ["220 2.0.0 starttls", "-"])
        let after = Self.ehloKeywords(&session)
        #expect(!after.contains("STARTTLS"))
        #expect(after.contains("AUTH PLAIN LOGIN"))
        #expect(after.filter { $0.hasPrefix("AUTH") } == ["AUTH PLAIN LOGIN"])
        // Once authenticated, AUTH is no longer offered (RFC 4954 §4: one AUTH per session).
        _ = Self.run(["AUTH PLAIN \(Self.plainAppSecret)", "<ok>"], session: &session)
        let authenticated = Self.ehloKeywords(&session)
        #expect(!authenticated.contains { $0.hasPrefix("AUTH") })
        #expect(!authenticated.contains("STARTTLS"))
    }

    @Test func offersNeitherWithoutCertificateOrUsers() {
        var noCertificate = Self.session(tls: false)
        #expect(!Self.ehloKeywords(&noCertificate).contains { $0 == "STARTTLS" || $0.hasPrefix("AUTH") })
        var noUsers = Self.session(users: false)
        #expect(Self.ehloKeywords(&noUsers).contains("STARTTLS"))
        _ = Self.run(["STARTTLS", "<tls>"], session: &noUsers)
        #expect(!Self.ehloKeywords(&noUsers).contains { $0.hasPrefix("AUTH") })
    }

    @Test func implicitTLSOffersAUTHAndNoSTARTTLS() {
        var session = Self.session(.submissions)
        #expect(!session.isTLSActive)
        session.tlsEstablished(description: Self.tlsDescription)
        #expect(session.isTLSActive)
        #expect(session.tlsDescription == Self.tlsDescription)
        let keywords = Self.ehloKeywords(&session)
        #expect(keywords.contains("AUTH PLAIN LOGIN"))
        #expect(!keywords.contains("STARTTLS"))
    }

    @Test func theGoAheadIs220() {
        var session = Self.session()
        _ = Self.run(["EHLO c"], session: &session)
        #expect(session.receive(line: ByteBuffer(string: "STARTTLS")) == .startTLS(SMTPReply(220, EnhancedStatusCode(2, 0, 0), "Ready to start TLS")))
        session.tlsEstablished(description: "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256")
        #expect(session.tlsDescription == "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256")
    }

    @Test func challengesAreTheRFCStrings() {
        var session = Self.session()
        _ = Self.run(Self.secured, session: &session)
        #expect(session.receive(line: ByteBuffer(string: "AUTH PLAIN")) == .reply(SMTPReply(334, nil, "")))
        _ = session.receive(line: ByteBuffer(string: "*"))
        #expect(session.receive(line: ByteBuffer(string: "AUTH LOGIN")) == .reply(SMTPReply(334, nil, "VXNlcm5hbWU6")))  // "Username:"
        #expect(session.receive(line: ByteBuffer(string: Self.app)) == .reply(SMTPReply(334, nil, "UGFzc3dvcmQ6")))    // "Password:"
    }

    @Test func passwordsMayHoldAnyText() {
        // "\0app\0pa ss:wörd" — spaces, colons and UTF-8 go to the verifier untouched.
        var session = Self.session()
        _ = Self.run(Self.secured, session: &session)
        let response = Base64.encode([0] + Array("app".utf8) + [0] + Array("pa ss:wörd".utf8))
        #expect(session.receive(line: ByteBuffer(string: "AUTH PLAIN \(response)")) == .verifyCredentials(user: "app", password: "pa ss:wörd"))
    }

    @Test func authenticatedUserIsRemembered() {
        var session = Self.session()
        _ = Self.run(Self.authenticated, session: &session, allowedSenders: ["App@Example.com"])
        #expect(session.authenticatedUser == "app")
        // Allowed senders are compared without case, whatever case they were given in.
        #expect(Self.run(["MAIL FROM:<app@example.COM>"], session: &session) == ["250 2.1.0"])
    }

    // MARK: - The envelope's client identity (RFC 3848 protocol names)

    static let clean = ServerSession.DataSummary(size: 10, exceededMaximumSize: false, sawBareLineEnding: false, receivedCount: 0, hasDate: false, hasMessageID: false)

    static func envelope(after lines: [String], listener: Listener = .relay, mayRelay: Bool = true,
                         mail: String = "MAIL FROM:<a@b.test>") -> (Envelope, ServerSession.MissingHeaders)? {
        var session = Self.session(listener, mayRelay: mayRelay)
        let replies = Self.run(lines + [mail, "RCPT TO:<x@ours.test>", "DATA"], session: &session)
        guard replies.suffix(3) == ["250 2.1.0", "250 2.1.5", "354"] else {
            Issue.record("the transaction was refused: \(replies)")
            return nil
        }
        guard case .enqueue(let envelope, let missing) = session.dataFinished(clean) else {
            Issue.record("no enqueue")
            return nil
        }
        return (envelope, missing)
    }

    @Test func protocolNames() {
        #expect(Self.envelope(after: ["HELO c"])?.0.client
            == ClientIdentity(address: "192.0.2.9", greetingName: "c", protocolName: "SMTP"))
        #expect(Self.envelope(after: ["EHLO c"])?.0.client
            == ClientIdentity(address: "192.0.2.9", greetingName: "c", protocolName: "ESMTP"))
        #expect(Self.envelope(after: ["EHLO a", "STARTTLS", "<tls>", "EHLO b"])?.0.client
            == ClientIdentity(address: "192.0.2.9", greetingName: "b", protocolName: "ESMTPS", tlsDescription: Self.tlsDescription))
        #expect(Self.envelope(after: Self.authenticated)?.0.client
            == ClientIdentity(address: "192.0.2.9", greetingName: "c", protocolName: "ESMTPSA",
                              tlsDescription: Self.tlsDescription, authenticatedUser: "app"))
        #expect(Self.envelope(after: ["<tls>", "EHLO c", "AUTH LOGIN", Self.app, Self.secret, "<ok>"], listener: .submissions)?.0.client
            == ClientIdentity(address: "192.0.2.9", greetingName: "c", protocolName: "ESMTPSA",
                              tlsDescription: Self.tlsDescription, authenticatedUser: "app"))
    }

    @Test func smtpUTF8TransactionsAreNamedUTF8SMTP() {
        // RFC 6531 §3.7.3: the transaction, not the session, used SMTPUTF8.
        #expect(Self.envelope(after: ["EHLO c"], mail: "MAIL FROM:<a@b.test> SMTPUTF8")?.0.client.protocolName == "UTF8SMTP")
        #expect(Self.envelope(after: Self.authenticated, mail: "MAIL FROM:<a@b.test> SMTPUTF8")?.0.client.protocolName
            == "UTF8SMTPSA")
    }

    @Test func authenticatedSubmissionsGetMissingHeaders() {
        // RFC 6409 §8: a submission from an authenticated user gets Date and Message-ID when it lacks them,
        // even when the client's address is not in the relay networks.
        guard let (_, missing) = Self.envelope(after: Self.authenticated, mayRelay: false) else { return }
        #expect(missing == [.date, .messageID])
        // Without AUTH, a stranger's message is left as it came.
        guard let (_, untouched) = Self.envelope(after: Self.secured, mayRelay: false) else { return }
        #expect(untouched.isEmpty)
    }
}
