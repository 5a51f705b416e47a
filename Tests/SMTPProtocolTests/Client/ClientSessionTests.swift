import Testing
@testable import SMTPProtocol

/// The client state machine against scripted servers: what it sends, and each recipient's outcome.
struct ClientSessionTests {
    static let ok = SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok")
    static let ehloPipelining = SMTPReply(250, nil, ["mx.test", "PIPELINING", "SIZE 100000", "8BITMIME", "DSN"])
    static let ehloPlain = SMTPReply(250, nil, ["mx.test"])

    static func transaction(_ recipients: [String], dsn: Bool = false, size: Int = 100) -> OutboundTransaction {
        var parameters = MailParameters()
        var recipientParameters = RecipientParameters()
        if dsn {
            parameters.dsnReturn = .headers
            parameters.dsnEnvelopeID = "env1"
            recipientParameters.notify = [.failure, .delay]
            recipientParameters.originalRecipient = "rfc822;x+40y"
        }
        parameters.body = .eightBitMIME
        return OutboundTransaction(reversePath: "a@b.test", parameters: parameters,
                                   recipients: recipients.map { OutboundRecipient(address: $0, parameters: recipientParameters) }, size: size)
    }

    /// Greets a session with the given EHLO reply and returns it ready.
    static func ready(_ ehlo: SMTPReply) -> ClientSession {
        var session = ClientSession(heloName: "relay.test")
        #expect(session.receive(SMTPReply(220, nil, "mx.test ESMTP")) == .send("EHLO relay.test\r\n"))
        #expect(session.receive(ehlo) == .ready)
        return session
    }

    @Test func pipelinesTheEnvelopeAndDeliversEachRecipient() {
        var session = Self.ready(Self.ehloPipelining)
        #expect(session.start(Self.transaction(["x@y.test", "z@y.test"], dsn: true)) == .send(
            "MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=env1\r\n"
            + "RCPT TO:<x@y.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;x+40y\r\n"
            + "RCPT TO:<z@y.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;x+40y\r\n"
            + "DATA\r\n"))
        #expect(session.receive(Self.ok) == .wait)
        #expect(session.wait == .command)
        #expect(session.receive(Self.ok) == .wait)
        #expect(session.receive(SMTPReply(251, nil, "will forward")) == .wait)
        #expect(session.wait == .dataInitiation)
        #expect(session.receive(SMTPReply(354, nil, "go")) == .sendMessage)
        #expect(session.messageSent() == .wait)
        #expect(session.wait == .dataTermination)
        let final = SMTPReply(250, EnhancedStatusCode(2, 0, 0), "queued as X")
        #expect(session.receive(final) == .finished([.delivered(final), .delivered(final)]))
        #expect(session.isReady)
    }

    @Test func oneRefusedRecipientAmongThreeFailsAlone() {
        var session = Self.ready(Self.ehloPipelining)
        _ = session.start(Self.transaction(["a@y.test", "b@y.test", "c@y.test"]))
        let unknown = SMTPReply(550, EnhancedStatusCode(5, 1, 1), "User unknown")
        let busy = SMTPReply(450, EnhancedStatusCode(4, 2, 1), "Mailbox busy")
        #expect(session.receive(Self.ok) == .wait)
        #expect(session.receive(Self.ok) == .wait)
        #expect(session.receive(unknown) == .wait)
        #expect(session.receive(busy) == .wait)
        #expect(session.receive(SMTPReply(354, nil, "go")) == .sendMessage)
        _ = session.messageSent()
        let final = SMTPReply(250, nil, "Ok")
        #expect(session.receive(final) == .finished([.delivered(final), .failed(unknown), .deferred(busy)]))
    }

    @Test func withoutPipeliningSendsOneCommandAtATime() {
        var session = Self.ready(Self.ehloPlain)
        #expect(session.start(Self.transaction(["x@y.test", "z@y.test"], dsn: true)) == .send("MAIL FROM:<a@b.test>\r\n"))
        #expect(session.receive(Self.ok) == .send("RCPT TO:<x@y.test>\r\n"))
        #expect(session.receive(Self.ok) == .send("RCPT TO:<z@y.test>\r\n"))
        #expect(session.receive(Self.ok) == .send("DATA\r\n"))
        #expect(session.receive(SMTPReply(354, nil, "go")) == .sendMessage)
        _ = session.messageSent()
        let deferred = SMTPReply(452, EnhancedStatusCode(4, 3, 1), "Disk full")
        #expect(session.receive(deferred) == .finished([.deferred(deferred), .deferred(deferred)]))
    }

    @Test func noAcceptedRecipientMeansNoDataAndAResetNextTime() {
        var session = Self.ready(Self.ehloPlain)
        _ = session.start(Self.transaction(["x@y.test"]))
        let refused = SMTPReply(550, EnhancedStatusCode(5, 1, 1), "No such user")
        #expect(session.receive(Self.ok) == .send("RCPT TO:<x@y.test>\r\n"))
        #expect(session.receive(refused) == .finished([.failed(refused)]))
        #expect(session.start(Self.transaction(["z@y.test"])) == .send("RSET\r\n"))
        #expect(session.receive(Self.ok) == .send("MAIL FROM:<a@b.test>\r\n"))
    }

    @Test func pipelinedRefusalsAreAllReadBeforeReporting() {
        var session = Self.ready(Self.ehloPipelining)
        _ = session.start(Self.transaction(["x@y.test"]))
        let refused = SMTPReply(550, EnhancedStatusCode(5, 1, 1), "No such user")
        #expect(session.receive(Self.ok) == .wait)
        #expect(session.receive(refused) == .wait)
        #expect(session.receive(SMTPReply(554, EnhancedStatusCode(5, 5, 1), "no valid recipients")) == .finished([.failed(refused)]))
    }

    @Test func refusedSenderFailsEveryRecipient() {
        var session = Self.ready(Self.ehloPipelining)
        _ = session.start(Self.transaction(["x@y.test", "z@y.test"]))
        let refused = SMTPReply(553, EnhancedStatusCode(5, 7, 1), "Sender rejected")
        let bad = SMTPReply(503, EnhancedStatusCode(5, 5, 1), "need MAIL")
        #expect(session.receive(refused) == .wait)
        #expect(session.receive(bad) == .wait)
        #expect(session.receive(bad) == .wait)
        #expect(session.receive(bad) == .finished([.failed(refused), .failed(refused)]))
    }

    @Test func hostLevelFailures() {
        let closing = SMTPReply(421, EnhancedStatusCode(4, 3, 2), "closing")
        var refusedGreeting = ClientSession(heloName: "relay.test")
        #expect(refusedGreeting.receive(SMTPReply(554, nil, "go away")) == .hostFailed(SMTPReply(554, nil, "go away")))
        var midTransaction = Self.ready(Self.ehloPipelining)
        _ = midTransaction.start(Self.transaction(["x@y.test"]))
        #expect(midTransaction.receive(Self.ok) == .wait)
        #expect(midTransaction.receive(closing) == .hostFailed(closing))
        var temporarySender = Self.ready(Self.ehloPlain)
        _ = temporarySender.start(Self.transaction(["x@y.test"]))
        let busy = SMTPReply(451, EnhancedStatusCode(4, 3, 0), "try later")
        #expect(temporarySender.receive(busy) == .hostFailed(busy))
        #expect(temporarySender.quit() == .send("QUIT\r\n"))
    }

    @Test func fallsBackToHELO() {
        var session = ClientSession(heloName: "relay.test")
        _ = session.receive(SMTPReply(220, nil, "old.test"))
        #expect(session.receive(SMTPReply(502, nil, "EHLO not implemented")) == .send("HELO relay.test\r\n"))
        #expect(session.receive(SMTPReply(250, nil, "old.test")) == .ready)
        // No extensions: no SIZE, no BODY, no DSN parameters, no pipelining.
        #expect(session.start(Self.transaction(["x@y.test"], dsn: true)) == .send("MAIL FROM:<a@b.test>\r\n"))
    }

    @Test func doesNotSendWhatTheServerCannotTake() {
        var small = Self.ready(SMTPReply(250, nil, ["mx.test", "SIZE 50"]))
        guard case .finished(let outcomes) = small.start(Self.transaction(["x@y.test"], size: 51)) else {
            Issue.record("expected a local refusal")
            return
        }
        #expect(outcomes.map { $0.reply.enhancedCode } == [EnhancedStatusCode(5, 3, 4)])
        var ascii = Self.ready(Self.ehloPlain)
        var request = Self.transaction(["ü@y.test"])
        request.parameters.isSMTPUTF8 = true
        guard case .finished(let utf8Outcomes) = ascii.start(request) else {
            Issue.record("expected a local refusal")
            return
        }
        #expect(utf8Outcomes.map { $0.reply.enhancedCode } == [EnhancedStatusCode(5, 6, 7)])
    }

    /// RFC 6531 §3.4: SMTPUTF8 goes only to a server that offers it; a message that needs nothing
    /// non-ASCII goes to one that does not, without the parameter; one that needs it is refused.
    @Test(arguments: [
        (ehlo: ["mx.test", "SMTPUTF8"], needsSMTPUTF8: false, mail: "MAIL FROM:<a@b.test> SMTPUTF8\r\n"),
        (ehlo: ["mx.test", "SMTPUTF8"], needsSMTPUTF8: true, mail: "MAIL FROM:<a@b.test> SMTPUTF8\r\n"),
        (ehlo: ["mx.test"], needsSMTPUTF8: false, mail: "MAIL FROM:<a@b.test>\r\n"),
        (ehlo: ["mx.test"], needsSMTPUTF8: true, mail: nil),
    ])
    func passesSMTPUTF8OnOnlyWhenOfferedAndNeeded(_ test: (ehlo: [String], needsSMTPUTF8: Bool, mail: String?)) {
        var session = Self.ready(SMTPReply(250, nil, test.ehlo))
        var request = Self.transaction(["x@y.test"])
        request.parameters.isSMTPUTF8 = true
        request.needsSMTPUTF8 = test.needsSMTPUTF8
        let action = session.start(request)
        if let mail = test.mail {
            #expect(action == .send(mail))
        } else {
            #expect(action == .finished([.failed(MessageRequirements.smtpUTF8Refusal)]))
        }
    }

    @Test func quitsPolitely() {
        var session = Self.ready(Self.ehloPlain)
        #expect(session.quit() == .send("QUIT\r\n"))
        #expect(session.receive(SMTPReply(221, nil, "bye")) == .close)
    }
}
