import Testing
@testable import SMTPProtocol

/// STARTTLS (RFC 3207, opportunistic per RFC 7435 or required) and AUTH (RFC 4954) on the client state
/// machine, against scripted servers: every step lists the server's reply and what the client must do.
struct ClientSessionTLSTests {
    static let greeting = SMTPReply(220, nil, "mx.test ESMTP")
    static let ehloWithSTARTTLS = SMTPReply(250, nil, ["mx.test", "PIPELINING", "SIZE 100000", "STARTTLS"])
    static let ehloPlain = SMTPReply(250, nil, ["mx.test", "PIPELINING", "SIZE 100000"])
    static let ehloAfterTLS = SMTPReply(250, nil, ["mx.test", "SIZE 100000", "AUTH PLAIN LOGIN"])
    static let ehloLoginOnly = SMTPReply(250, nil, ["mx.test", "AUTH LOGIN"])
    static let goAhead = SMTPReply(220, EnhancedStatusCode(2, 0, 0), "Ready to start TLS")
    static let authOK = SMTPReply(235, EnhancedStatusCode(2, 7, 0), "Authentication successful")
    static let credentials = ClientSession.Security.Credentials(user: "relay", password: "p4ss")
    static let plainResponse = "AHJlbGF5AHA0c3M="  // "\0relay\0p4ss"

    static let transaction = OutboundTransaction(reversePath: "a@b.test", parameters: MailParameters(),
                                                 recipients: [OutboundRecipient(address: "x@y.test")], size: 100)

    static let opportunistic = ClientSession.Security(usesTLS: true)
    static let required = ClientSession.Security(requiresTLS: true)

    /// One step of a conversation: a server reply, or the end of the TLS handshake, and what the client does.
    enum Step: Sendable {
        case reply(SMTPReply, ClientSession.Action)
        case handshake(ClientSession.Action)
    }

    struct Conversation: Sendable, CustomTestStringConvertible {
        var name: String
        var security: ClientSession.Security
        var steps: [Step]
        var isTLSActive: Bool
        var isAuthenticated = false
        var testDescription: String { name }
    }

    static let conversations: [Conversation] = [
        Conversation(name: "opportunistic: STARTTLS when offered, then EHLO again", security: opportunistic, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(goAhead, .startTLS),
            .handshake(.send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .ready),  // STARTTLS offered again after TLS (a broken server): not sent twice
        ], isTLSActive: true),
        Conversation(name: "opportunistic: plaintext when STARTTLS is not offered", security: opportunistic, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloPlain, .ready),
        ], isTLSActive: false),
        Conversation(name: "opportunistic: plaintext when STARTTLS is refused", security: opportunistic, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(SMTPReply(454, EnhancedStatusCode(4, 7, 0), "TLS not available"), .ready),
        ], isTLSActive: false),
        Conversation(name: "opportunistic: 421 to STARTTLS fails the host", security: opportunistic, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(SMTPReply(421, EnhancedStatusCode(4, 3, 2), "bye"), .hostFailed(SMTPReply(421, EnhancedStatusCode(4, 3, 2), "bye"))),
        ], isTLSActive: false),
        Conversation(name: "opportunistic after HELO: plaintext", security: opportunistic, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "what?"), .send("HELO relay.test\r\n")),
            .reply(SMTPReply(250, nil, "mx.test"), .ready),
        ], isTLSActive: false),
        Conversation(name: "plaintext policy ignores STARTTLS", security: .plaintext, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .ready),
        ], isTLSActive: false),
        Conversation(name: "required: STARTTLS when offered", security: required, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(goAhead, .startTLS),
            .handshake(.send("EHLO relay.test\r\n")),
            .reply(ehloPlain, .ready),
        ], isTLSActive: true),
        Conversation(name: "required: no STARTTLS offered fails the host", security: required, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloPlain, .hostFailed(SMTPReply(451, EnhancedStatusCode(4, 7, 10), "TLS is required, but the server does not offer STARTTLS"))),
        ], isTLSActive: false),
        Conversation(name: "required: STARTTLS refused fails the host", security: required, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(SMTPReply(454, EnhancedStatusCode(4, 7, 0), "TLS not available"),
                   .hostFailed(SMTPReply(454, EnhancedStatusCode(4, 7, 0), "TLS not available"))),
        ], isTLSActive: false),
        Conversation(name: "required: HELO only fails the host", security: required, steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "no EHLO"), .send("HELO relay.test\r\n")),
            .reply(SMTPReply(250, nil, "mx.test"), .hostFailed(SMTPReply(451, EnhancedStatusCode(4, 7, 10), "TLS is required, but the server does not offer STARTTLS"))),
        ], isTLSActive: false),

        // AUTH (RFC 4954)
        Conversation(name: "AUTH PLAIN after STARTTLS", security: ClientSession.Security(usesTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(goAhead, .startTLS),
            .handshake(.send("EHLO relay.test\r\n")),
            .reply(ehloAfterTLS, .send("AUTH PLAIN \(plainResponse)\r\n")),
            .reply(authOK, .ready),
        ], isTLSActive: true, isAuthenticated: true),
        Conversation(name: "AUTH LOGIN when PLAIN is not offered", security: ClientSession.Security(requiresTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(goAhead, .startTLS),
            .handshake(.send("EHLO relay.test\r\n")),
            .reply(ehloLoginOnly, .send("AUTH LOGIN\r\n")),
            .reply(SMTPReply(334, nil, "VXNlcm5hbWU6"), .send("cmVsYXk=\r\n")),   // "relay"
            .reply(SMTPReply(334, nil, "UGFzc3dvcmQ6"), .send("cDRzcw==\r\n")),   // "p4ss"
            .reply(authOK, .ready),
        ], isTLSActive: true, isAuthenticated: true),
        Conversation(name: "AUTH refused fails the host", security: ClientSession.Security(usesTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(goAhead, .startTLS),
            .handshake(.send("EHLO relay.test\r\n")),
            .reply(ehloAfterTLS, .send("AUTH PLAIN \(plainResponse)\r\n")),
            .reply(SMTPReply(535, EnhancedStatusCode(5, 7, 8), "Authentication credentials invalid"),
                   .hostFailed(SMTPReply(535, EnhancedStatusCode(5, 7, 8), "Authentication credentials invalid"))),
        ], isTLSActive: true),
        Conversation(name: "AUTH LOGIN refused at the password", security: ClientSession.Security(usesTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(goAhead, .startTLS),
            .handshake(.send("EHLO relay.test\r\n")),
            .reply(ehloLoginOnly, .send("AUTH LOGIN\r\n")),
            .reply(SMTPReply(334, nil, "VXNlcm5hbWU6"), .send("cmVsYXk=\r\n")),
            .reply(SMTPReply(334, nil, "UGFzc3dvcmQ6"), .send("cDRzcw==\r\n")),
            .reply(SMTPReply(535, EnhancedStatusCode(5, 7, 8), "no"), .hostFailed(SMTPReply(535, EnhancedStatusCode(5, 7, 8), "no"))),
        ], isTLSActive: true),
        Conversation(name: "no mechanism we know", security: ClientSession.Security(usesTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(goAhead, .startTLS),
            .handshake(.send("EHLO relay.test\r\n")),
            .reply(SMTPReply(250, nil, ["mx.test", "AUTH CRAM-MD5 XOAUTH2"]),
                   .hostFailed(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "The server offers no AUTH mechanism we support (PLAIN, LOGIN)"))),
        ], isTLSActive: true),
        Conversation(name: "no AUTH offered at all", security: ClientSession.Security(usesTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(ehloWithSTARTTLS, .send("STARTTLS\r\n")),
            .reply(goAhead, .startTLS),
            .handshake(.send("EHLO relay.test\r\n")),
            .reply(ehloPlain, .hostFailed(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "The server offers no AUTH mechanism we support (PLAIN, LOGIN)"))),
        ], isTLSActive: true),

        // Credentials never travel in plaintext.
        Conversation(name: "credentials without a TLS policy", security: ClientSession.Security(credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(SMTPReply(250, nil, ["mx.test", "STARTTLS", "AUTH PLAIN LOGIN"]),
                   .hostFailed(SMTPReply(451, EnhancedStatusCode(4, 7, 10), "Credentials are never sent without TLS, and this session is not encrypted"))),
        ], isTLSActive: false),
        Conversation(name: "credentials, opportunistic, no STARTTLS offered", security: ClientSession.Security(usesTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(SMTPReply(250, nil, ["mx.test", "AUTH PLAIN LOGIN"]),
                   .hostFailed(SMTPReply(451, EnhancedStatusCode(4, 7, 10), "Credentials are never sent without TLS, and this session is not encrypted"))),
        ], isTLSActive: false),
        Conversation(name: "credentials, opportunistic, STARTTLS refused", security: ClientSession.Security(usesTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(SMTPReply(250, nil, ["mx.test", "STARTTLS", "AUTH PLAIN LOGIN"]), .send("STARTTLS\r\n")),
            .reply(SMTPReply(454, EnhancedStatusCode(4, 7, 0), "TLS not available"),
                   .hostFailed(SMTPReply(451, EnhancedStatusCode(4, 7, 10), "Credentials are never sent without TLS, and this session is not encrypted"))),
        ], isTLSActive: false),
        Conversation(name: "credentials after HELO", security: ClientSession.Security(usesTLS: true, credentials: credentials), steps: [
            .reply(greeting, .send("EHLO relay.test\r\n")),
            .reply(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "what?"), .send("HELO relay.test\r\n")),
            .reply(SMTPReply(250, nil, "mx.test"),
                   .hostFailed(SMTPReply(451, EnhancedStatusCode(4, 7, 10), "Credentials are never sent without TLS, and this session is not encrypted"))),
        ], isTLSActive: false),
    ]

    @Test(arguments: conversations)
    func followsConversation(_ conversation: Conversation) {
        var session = ClientSession(heloName: "relay.test", security: conversation.security)
        var sent: [String] = []
        for (index, step) in conversation.steps.enumerated() {
            let action: ClientSession.Action
            let expected: ClientSession.Action
            switch step {
            case .reply(let reply, let expectedAction):
                action = session.receive(reply)
                expected = expectedAction
            case .handshake(let expectedAction):
                action = session.tlsEstablished()
                expected = expectedAction
            }
            #expect(action == expected, "step \(index + 1)")
            if case .send(let text) = action { sent.append(text) }
            // A host failure is the server's when it passes the server's reply on, the client's own otherwise.
            if case .hostFailed(let failure) = action, case .reply(let reply, _) = step {
                #expect(session.isHostFailureLocal == (failure != reply), "step \(index + 1)")
            }
        }
        #expect(session.isTLSActive == conversation.isTLSActive)
        #expect(session.isAuthenticated == conversation.isAuthenticated)
        if !session.isTLSActive {
            // Whatever happened, nothing that carries the password went out on a plaintext session.
            #expect(!sent.contains { $0.hasPrefix("AUTH") || $0.contains(Self.plainResponse) || $0.contains("cDRzcw==") }, "\(sent)")
        }
    }

    @Test func capabilitiesAfterTLSReplaceThoseBefore() {
        // RFC 3207 §4.2: what the server said before TLS is forgotten; the second EHLO decides.
        var session = ClientSession(heloName: "relay.test", security: Self.opportunistic)
        _ = session.receive(Self.greeting)
        _ = session.receive(Self.ehloWithSTARTTLS)   // PIPELINING offered in plaintext ...
        #expect(session.capabilities?.supportsPipelining == true)
        #expect(session.receive(Self.goAhead) == .startTLS)
        #expect(session.tlsEstablished() == .send("EHLO relay.test\r\n"))
        #expect(session.capabilities == nil)
        #expect(session.receive(SMTPReply(250, nil, ["mx.test", "SIZE 100000"])) == .ready)  // ... but not after TLS
        #expect(session.start(Self.transaction) == .send("MAIL FROM:<a@b.test> SIZE=100\r\n"))
        #expect(session.receive(SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok")) == .send("RCPT TO:<x@y.test>\r\n"))
    }

    @Test func authenticatedSessionCarriesTransactions() {
        var session = ClientSession(heloName: "relay.test", security: ClientSession.Security(usesTLS: true, credentials: Self.credentials))
        _ = session.receive(Self.greeting)
        _ = session.receive(Self.ehloWithSTARTTLS)
        _ = session.receive(Self.goAhead)
        _ = session.tlsEstablished()
        _ = session.receive(SMTPReply(250, nil, ["mx.test", "PIPELINING", "AUTH PLAIN"]))
        #expect(session.receive(Self.authOK) == .ready)
        #expect(session.isReady)
        #expect(session.start(Self.transaction) == .send("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"))
        #expect(session.receive(SMTPReply(250, nil, "Ok")) == .wait)
        #expect(session.receive(SMTPReply(250, nil, "Ok")) == .wait)
        #expect(session.receive(SMTPReply(354, nil, "go")) == .sendMessage)
        _ = session.messageSent()
        let final = SMTPReply(250, EnhancedStatusCode(2, 0, 0), "queued")
        #expect(session.receive(final) == .finished([.delivered(final)]))
        // Another transaction on the same connection needs no new AUTH.
        #expect(session.isAuthenticated)
        #expect(session.start(Self.transaction) == .send("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"))
    }

    @Test func securityDefaults() {
        #expect(ClientSession.Security.plaintext == ClientSession.Security(usesTLS: false, requiresTLS: false, credentials: nil))
        // `required` implies using TLS.
        #expect(ClientSession.Security(requiresTLS: true).usesTLS)
        #expect(!ClientSession.Security(credentials: Self.credentials).usesTLS)
    }
}
