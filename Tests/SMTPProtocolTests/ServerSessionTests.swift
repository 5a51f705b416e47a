import NIOCore
import Testing
@testable import SMTPProtocol

/// The server state machine (RFC 5321 §4.1.4 command order, §4.5.3.1 limits, §3.6 relaying), driven by
/// transcripts: each line the client sends and the reply code and enhanced code it must get.
struct ServerSessionTests {
    static let configuration = ServerSessionConfiguration(hostname: "relay.test", maximumMessageSize: 1000, maximumRecipients: 2, maximumErrors: 3)

    static func session(mayRelay: Bool = true, relayDomains: Set<String> = ["ours.test"]) -> ServerSession {
        ServerSession(configuration: configuration, clientAddress: "192.0.2.9",
                      relayPolicy: RelayPolicy(clientMayRelay: mayRelay, relayDomains: relayDomains))
    }

    /// Sends each line and returns "code enhanced" for each reply (`354` and the EHLO reply have no enhanced code).
    static func transcript(_ lines: [String], session: inout ServerSession) -> [String] {
        lines.map { line in
            let action = session.receive(line: ByteBuffer(string: line))
            switch action {
            case .reply(let reply), .beginData(let reply), .replyAndClose(let reply):
                return [String(reply.code), reply.enhancedCode?.description].compactMap { $0 }.joined(separator: " ")
            case .startTLS(let reply):
                return "\(reply.code) \(reply.enhancedCode!) starttls"
            case .enqueue:
                return "enqueue"
            case .verifyCredentials(let user, let password):
                return "verify \(user):\(password)"
            }
        }
    }

    struct Transcript: Sendable, CustomTestStringConvertible {
        var name: String
        var mayRelay = true
        var lines: [String]
        var replies: [String]
        var testDescription: String { name }
    }

    static let transcripts: [Transcript] = [
        Transcript(name: "a whole transaction", lines: ["EHLO c", "MAIL FROM:<a@b.test>", "RCPT TO:<x@far.test>", "DATA"],
                   replies: ["250", "250 2.1.0", "250 2.1.5", "354"]),
        Transcript(name: "HELO works too", lines: ["HELO c", "MAIL FROM:<>", "RCPT TO:<x@far.test>"],
                   replies: ["250", "250 2.1.0", "250 2.1.5"]),
        Transcript(name: "MAIL needs a greeting", lines: ["MAIL FROM:<a@b.test>"], replies: ["503 5.5.1"]),
        Transcript(name: "RCPT needs MAIL", lines: ["EHLO c", "RCPT TO:<x@far.test>"], replies: ["250", "503 5.5.1"]),
        Transcript(name: "DATA needs RCPT", lines: ["EHLO c", "MAIL FROM:<a@b.test>", "DATA"], replies: ["250", "250 2.1.0", "503 5.5.1"]),
        Transcript(name: "no nested MAIL", lines: ["EHLO c", "MAIL FROM:<a@b.test>", "MAIL FROM:<a@b.test>"], replies: ["250", "250 2.1.0", "503 5.5.1"]),
        Transcript(name: "RSET ends the transaction", lines: ["EHLO c", "MAIL FROM:<a@b.test>", "RSET", "RCPT TO:<x@far.test>", "MAIL FROM:<a@b.test>"],
                   replies: ["250", "250 2.1.0", "250 2.0.0", "503 5.5.1", "250 2.1.0"]),
        Transcript(name: "EHLO resets the transaction", lines: ["EHLO c", "MAIL FROM:<a@b.test>", "EHLO c", "RCPT TO:<x@far.test>"],
                   replies: ["250", "250 2.1.0", "250", "503 5.5.1"]),
        Transcript(name: "declared size over the limit", lines: ["EHLO c", "MAIL FROM:<a@b.test> SIZE=1001"], replies: ["250", "552 5.3.4"]),
        Transcript(name: "declared size at the limit", lines: ["EHLO c", "MAIL FROM:<a@b.test> SIZE=1000"], replies: ["250", "250 2.1.0"]),
        Transcript(name: "too many recipients", lines: ["EHLO c", "MAIL FROM:<a@b.test>", "RCPT TO:<x@far.test>", "RCPT TO:<y@far.test>", "RCPT TO:<z@far.test>"],
                   replies: ["250", "250 2.1.0", "250 2.1.5", "250 2.1.5", "452 4.5.3"]),
        Transcript(name: "strangers may not relay", mayRelay: false,
                   lines: ["EHLO c", "MAIL FROM:<a@b.test>", "RCPT TO:<x@far.test>", "RCPT TO:<x@ours.test>", "RCPT TO:<x@OURS.test>"],
                   replies: ["250", "250 2.1.0", "550 5.7.1", "250 2.1.5", "250 2.1.5"]),
        Transcript(name: "routing tricks do not open the relay", mayRelay: false,
                   lines: ["EHLO c", "MAIL FROM:<a@b.test>", "RCPT TO:<x%far.test@ours.test>", "RCPT TO:<\"x@far.test\"@ours.test>", "RCPT TO:<far.test!x@ours.test>"],
                   replies: ["250", "250 2.1.0", "550 5.7.1", "550 5.7.1", "550 5.7.1"]),
        Transcript(name: "address literals and source routes do not open the relay", mayRelay: false,
                   lines: ["EHLO c", "MAIL FROM:<a@b.test>", "RCPT TO:<x@[192.0.2.1]>", "RCPT TO:<@ours.test:x@far.test>", "RCPT TO:<@far.test:x@ours.test>"],
                   replies: ["250", "250 2.1.0", "550 5.7.1", "550 5.7.1", "250 2.1.5"]),
        Transcript(name: "DATA after only refused recipients", mayRelay: false,
                   lines: ["EHLO c", "MAIL FROM:<a@b.test>", "RCPT TO:<x@far.test>", "DATA"],
                   replies: ["250", "250 2.1.0", "550 5.7.1", "554 5.5.1"]),
        Transcript(name: "UTF-8 addresses need SMTPUTF8", lines: ["EHLO c", "MAIL FROM:<ä@b.test>", "MAIL FROM:<a@b.test>", "RCPT TO:<ü@far.test>", "RSET", "MAIL FROM:<ä@b.test> SMTPUTF8", "RCPT TO:<ü@far.test>"],
                   replies: ["250", "553 5.6.7", "250 2.1.0", "553 5.6.7", "250 2.0.0", "250 2.1.0", "250 2.1.5"]),
        Transcript(name: "informational commands", lines: ["NOOP", "HELP", "VRFY someone", "EXPN list"],
                   replies: ["250 2.0.0", "214 2.0.0", "252 2.5.0", "502 5.5.1"]),
        Transcript(name: "syntax errors", lines: ["EHLO", "EHLO c", "MAIL FROM:<a b@c>", "MAIL FROM:<a@b.test> FOO=1"],
                   replies: ["501 5.5.4", "250", "501 5.1.7", "555 5.5.4"]),
        Transcript(name: "unknown command", lines: ["FROB"], replies: ["500 5.5.2"]),
        Transcript(name: "bare line endings in a command", lines: ["NOOP\nQUIT"], replies: ["500 5.5.2"]),
        Transcript(name: "too many errors", lines: ["FROB", "FROB", "FROB", "FROB"], replies: ["500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0"]),
        Transcript(name: "QUIT", lines: ["QUIT"], replies: ["221 2.0.0"]),
    ]

    @Test(arguments: transcripts)
    func followsTranscript(_ transcript: Transcript) {
        var session = Self.session(mayRelay: transcript.mayRelay)
        #expect(Self.transcript(transcript.lines, session: &session) == transcript.replies)
    }

    @Test func greetsWithHostname() {
        #expect(Self.session().greetingReply() == SMTPReply(220, nil, "relay.test ESMTP"))
    }

    @Test func advertisesExtensions() {
        var session = Self.session()
        guard case .reply(let reply) = session.receive(line: ByteBuffer(string: "EHLO client")) else {
            Issue.record("no reply")
            return
        }
        #expect(reply.lines == ["relay.test greets client", "PIPELINING", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"])
    }

    static func sessionInData(mayRelay: Bool = true) -> ServerSession {
        var session = Self.session(mayRelay: mayRelay)
        _ = transcript(["EHLO c", "MAIL FROM:<a@b.test> RET=HDRS", "RCPT TO:<x@ours.test> NOTIFY=NEVER"], session: &session)
        guard case .beginData = session.receive(line: ByteBuffer(string: "DATA")) else { preconditionFailure() }
        return session
    }

    static let clean = ServerSession.DataSummary(size: 10, exceededMaximumSize: false, sawBareLineEnding: false, receivedCount: 0, hasDate: true, hasMessageID: true)

    @Test func enqueuesTheEnvelopeThenAcknowledges() {
        var session = Self.sessionInData()
        guard case .enqueue(let envelope, let missing) = session.dataFinished(Self.clean) else {
            Issue.record("expected enqueue")
            return
        }
        #expect(envelope.reversePath == Mailbox(localPart: "a", domain: "b.test"))
        #expect(envelope.parameters.dsnReturn == .headers)
        #expect(envelope.recipients.map(\.mailbox.description) == ["x@ours.test"])
        #expect(envelope.recipients[0].parameters.notify == .never)
        #expect(envelope.client == ClientIdentity(address: "192.0.2.9", greetingName: "c", protocolName: "ESMTP"))
        #expect(missing.isEmpty)
        #expect(session.enqueued(queueID: "ABC") == .reply(SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: queued as ABC")))
        // The transaction is over: a new one starts clean.
        #expect(Self.transcript(["RCPT TO:<x@far.test>"], session: &session) == ["503 5.5.1"])
    }

    @Test func reportsStorageFailureAs452() {
        var session = Self.sessionInData()
        _ = session.dataFinished(Self.clean)
        #expect(session.enqueueFailed() == .reply(SMTPReply(452, EnhancedStatusCode(4, 3, 1), "Error: insufficient system storage")))
    }

    static let refusals: [(ServerSession.DataSummary, String)] = [
        (.init(size: 2000, exceededMaximumSize: true, sawBareLineEnding: false, receivedCount: 0, hasDate: true, hasMessageID: true), "552 5.3.4"),
        (.init(size: 10, exceededMaximumSize: false, sawBareLineEnding: true, receivedCount: 0, hasDate: true, hasMessageID: true), "550 5.6.0"),
        (.init(size: 10, exceededMaximumSize: false, sawBareLineEnding: false, sawNUL: true, receivedCount: 0, hasDate: true, hasMessageID: true), "550 5.6.0"),
        (.init(size: 10, exceededMaximumSize: false, sawBareLineEnding: false, receivedCount: 101, hasDate: true, hasMessageID: true), "554 5.4.6"),
    ]

    @Test(arguments: refusals)
    func refusesBadMessages(summary: ServerSession.DataSummary, expected: String) {
        var session = Self.sessionInData()
        guard case .reply(let reply) = session.dataFinished(summary) else {
            Issue.record("expected a refusal")
            return
        }
        #expect("\(reply.code) \(reply.enhancedCode!)" == expected)
        #expect(Self.transcript(["RCPT TO:<x@far.test>"], session: &session) == ["503 5.5.1"])
    }

    @Test func addsDateAndMessageIDOnlyForRelayClients() {
        let bare = ServerSession.DataSummary(size: 10, exceededMaximumSize: false, sawBareLineEnding: false, receivedCount: 0, hasDate: false, hasMessageID: false)
        var subscriber = Self.sessionInData(mayRelay: true)
        guard case .enqueue(_, let missing) = subscriber.dataFinished(bare) else { Issue.record("expected enqueue"); return }
        #expect(missing == [.date, .messageID])
        var stranger = Self.sessionInData(mayRelay: false)
        guard case .enqueue(_, let none) = stranger.dataFinished(bare) else { Issue.record("expected enqueue"); return }
        #expect(none.isEmpty)
    }

    @Test func closesOnTimeoutAndShutdown() {
        var session = Self.session()
        #expect(session.timedOut() == .replyAndClose(SMTPReply(421, EnhancedStatusCode(4, 4, 2), "relay.test Error: timeout exceeded")))
        var other = Self.session()
        guard case .replyAndClose(let reply) = other.shuttingDown() else { Issue.record("expected close"); return }
        #expect(reply.code == 421 && reply.enhancedCode == EnhancedStatusCode(4, 3, 2))
    }

    @Test func limitsLineLengthByVerb() {
        var session = Self.session()
        let tooLong = SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: line too long")
        #expect(session.receive(line: ByteBuffer(string: "NOOP " + String(repeating: "x", count: 505))) == .reply(SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok")))
        #expect(session.receive(line: ByteBuffer(string: "NOOP " + String(repeating: "x", count: 506))) == .reply(tooLong))
        _ = session.receive(line: ByteBuffer(string: "EHLO c"))
        let longMail = "MAIL FROM:<a@b.test> ENVID=" + String(repeating: "e", count: 100)
        #expect(session.receive(line: ByteBuffer(string: longMail)) == .reply(SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok")))
        let longRecipient = "RCPT TO:<x@y.test> ORCPT=rfc822;" + String(repeating: "o", count: 1012 - 34)
        // At the limit the line is parsed (and its 978-octet ORCPT refused); one octet more is too long.
        #expect(session.receive(line: ByteBuffer(string: longRecipient)) == .reply(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Error: bad parameter ORCPT")))
        #expect(session.receive(line: ByteBuffer(string: longRecipient + "o")) == .reply(tooLong))
    }

    @Test func refusesOverlongLines() {
        var session = Self.session()
        #expect(session.receiveOverlongLine() == .reply(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: line too long")))
    }
}
