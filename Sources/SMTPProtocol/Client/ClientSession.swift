/// The client side of an SMTP session (RFC 5321 §3, §4.1), the twin of ``ServerSession``: a state
/// machine with no I/O. The driver feeds it the server's replies and performs the ``Action`` each returns.
///
/// - EHLO, falling back to HELO when EHLO is refused (§3.2).
/// - With PIPELINING (RFC 2920), `MAIL`, every `RCPT` and `DATA` go in one write; without it, one at a time.
/// - `SIZE=` is declared when offered (RFC 1870), and a message over the server's limit is not sent.
/// - DSN parameters (RFC 3461) are passed on only when the server offers DSN; `SMTPUTF8` (RFC 6531) only
///   when offered, and a message that needs it is not sent to a server without it.
/// - Every recipient gets its own outcome: one `550` among three recipients fails that one alone.
/// - A `421`, a refused greeting, EHLO/HELO, or a `4xx` to `MAIL` is a failure of the host, not of the
///   recipients: the caller tries the next mail exchanger.
/// - After a transaction the session is ready for another on the same connection (connection reuse);
///   `RSET` is sent first when the last one was left open.
public struct ClientSession: Sendable {
    public enum Action: Hashable, Sendable {
        /// Write these command lines (each ends with CRLF), then wait for replies.
        case send(String)
        /// Write the dot-stuffed message text and the final `.`, then call ``messageSent()``.
        case sendMessage
        /// Greeted (or reset) and idle: call ``start(_:)`` or ``quit()``.
        case ready
        /// The transaction is over, one outcome per recipient in order.
        case finished([RecipientOutcome])
        /// This host cannot take the message now; call ``quit()`` and try the next host.
        case hostFailed(SMTPReply)
        /// Wait for more replies.
        case wait
        /// Close the connection.
        case close
        /// The server said `220` to STARTTLS: do the TLS handshake, then call ``tlsEstablished()``
        /// (RFC 3207 §4.2).
        case startTLS
    }

    /// What the session does about TLS and AUTH toward this server.
    public struct Security: Hashable, Sendable {
        /// Send STARTTLS when the server offers it (RFC 7435 opportunistic security).
        public var usesTLS: Bool
        /// Never go on in plaintext: no STARTTLS offered, or refused, is a failure of the host.
        public var requiresTLS: Bool
        /// RFC 4954 credentials, sent only over TLS.
        public var credentials: Credentials?

        public struct Credentials: Hashable, Sendable {
            public var user: String
            public var password: String
            public init(user: String, password: String) {
                self.user = user
                self.password = password
            }
        }

        public init(usesTLS: Bool = false, requiresTLS: Bool = false, credentials: Credentials? = nil) {
            self.usesTLS = usesTLS || requiresTLS
            self.requiresTLS = requiresTLS
            self.credentials = credentials
        }

        public static let plaintext = Security()
    }

    /// The waits of RFC 5321 §4.5.3.2, each with its own timeout.
    public enum Wait: Hashable, Sendable {
        case greeting, command, dataInitiation, dataTermination
    }

    private enum Expectation: Hashable, Sendable {
        case mail
        case recipient(Int)
        case data
    }

    private struct Transaction: Hashable, Sendable {
        var request: OutboundTransaction
        var isPipelined: Bool
        var expected: [Expectation] = []
        var mailReply: SMTPReply?
        var recipientReplies: [SMTPReply?]
        var isDiscardingText = false

        init(request: OutboundTransaction, isPipelined: Bool) {
            self.request = request
            self.isPipelined = isPipelined
            self.recipientReplies = Array(repeating: nil, count: request.recipients.count)
        }

        var acceptedIndices: [Int] {
            recipientReplies.indices.filter { recipientReplies[$0]?.isPositive == true }
        }
    }

    private enum State: Hashable, Sendable {
        case greeting
        case ehlo
        case helo
        case startingTLS
        case authenticating(loginStep: Int?)
        case ready
        case resetting(OutboundTransaction?)
        case transaction(Transaction)
        case sendingMessage(Transaction)
        case finalReply(Transaction)
        case failed
        case quitting
        case closed
    }

    public let heloName: String
    public let security: Security
    public private(set) var capabilities: ServerCapabilities?
    public private(set) var isTLSActive = false
    public private(set) var isAuthenticated = false
    /// The last ``Action/hostFailed(_:)`` carries the client's own reason (a TLS or AUTH requirement the
    /// server cannot meet), not the server's reply.
    public private(set) var isHostFailureLocal = false
    private var state = State.greeting
    private var needsReset = false

    public init(heloName: String, security: Security = .plaintext) {
        self.heloName = heloName
        self.security = security
    }

    /// The handshake after STARTTLS succeeded: the session starts over with EHLO (RFC 3207 §4.2).
    public mutating func tlsEstablished() -> Action {
        precondition(state == .startingTLS)
        isTLSActive = true
        capabilities = nil
        state = .ehlo
        return .send("EHLO \(heloName)\r\n")
    }

    /// After EHLO: STARTTLS when wanted and offered, then AUTH when configured, then ready.
    private mutating func afterGreeting() -> Action {
        let capabilities = self.capabilities ?? ServerCapabilities(isExtended: false)
        if !isTLSActive && security.usesTLS {
            if capabilities.supportsStartTLS {
                state = .startingTLS
                return .send("STARTTLS\r\n")
            }
            if security.requiresTLS {
                return failHost(SMTPReply(451, EnhancedStatusCode(4, 7, 10), "TLS is required, but the server does not offer STARTTLS"), isLocal: true)
            }
        }
        if let credentials = security.credentials, !isAuthenticated {
            guard isTLSActive else {
                return failHost(SMTPReply(451, EnhancedStatusCode(4, 7, 10), "Credentials are never sent without TLS, and this session is not encrypted"), isLocal: true)
            }
            if capabilities.authMechanisms.contains("PLAIN") {
                state = .authenticating(loginStep: nil)
                return .send("AUTH PLAIN \(Base64.encode([0] + Array(credentials.user.utf8) + [0] + Array(credentials.password.utf8)))\r\n")
            }
            if capabilities.authMechanisms.contains("LOGIN") {
                state = .authenticating(loginStep: 0)
                return .send("AUTH LOGIN\r\n")
            }
            return failHost(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "The server offers no AUTH mechanism we support (PLAIN, LOGIN)"), isLocal: true)
        }
        state = .ready
        return .ready
    }

    /// Which timeout applies to the wait in progress.
    public var wait: Wait {
        switch state {
        case .greeting: .greeting
        case .transaction(let transaction) where transaction.expected.first == .data: .dataInitiation
        case .finalReply, .sendingMessage: .dataTermination
        default: .command
        }
    }

    /// `true` when the connection may carry another transaction.
    public var isReady: Bool { state == .ready }

    // MARK: - Events

    public mutating func receive(_ reply: SMTPReply) -> Action {
        switch state {
        case .greeting:
            guard reply.code == 220 else { return failHost(reply) }
            state = .ehlo
            return .send("EHLO \(heloName)\r\n")
        case .ehlo:
            if reply.code == 250 {
                capabilities = ServerCapabilities(ehloReply: reply)
                return afterGreeting()
            }
            if reply.code == 421 || !reply.isPermanentFailure { return failHost(reply) }
            state = .helo
            return .send("HELO \(heloName)\r\n")
        case .helo:
            guard reply.code == 250 else { return failHost(reply) }
            capabilities = ServerCapabilities(isExtended: false)
            return afterGreeting()
        case .startingTLS:
            if reply.code == 220 { return .startTLS }
            if security.requiresTLS || reply.code == 421 { return failHost(reply) }
            // Opportunistic: the server refused STARTTLS; go on in plaintext.
            capabilities?.supportsStartTLS = false
            return afterGreeting()
        case .authenticating(let loginStep):
            switch (reply.code, loginStep) {
            case (235, _):
                isAuthenticated = true
                state = .ready
                return .ready
            case (334, 0?):
                state = .authenticating(loginStep: 1)
                return .send(Base64.encode(security.credentials!.user) + "\r\n")
            case (334, 1?):
                state = .authenticating(loginStep: 2)
                return .send(Base64.encode(security.credentials!.password) + "\r\n")
            default:
                return failHost(reply)
            }
        case .resetting(let next):
            guard reply.code == 250 else { return failHost(reply) }
            needsReset = false
            state = .ready
            if let next { return start(next) }
            return .ready
        case .transaction(var transaction):
            return receiveInTransaction(reply, &transaction)
        case .finalReply(let transaction):
            if reply.code == 421 { return failHost(reply) }
            if transaction.isDiscardingText {
                return finish(transaction, finalReply: nil)
            }
            return finish(transaction, finalReply: reply)
        case .quitting:
            state = .closed
            return .close
        case .ready, .sendingMessage, .failed, .closed:
            // An unsolicited reply: RFC 5321 §4.2 allows only 421 out of turn.
            return failHost(reply)
        }
    }

    /// Starts a transaction: the envelope commands, pipelined when the server allows it.
    public mutating func start(_ request: OutboundTransaction) -> Action {
        precondition(state == .ready, "start outside the ready state: \(state)")
        precondition(!request.recipients.isEmpty, "a transaction needs recipients")
        guard let capabilities else { preconditionFailure("ready without capabilities") }
        if needsReset {
            state = .resetting(request)
            return .send("RSET\r\n")
        }
        if let limit = capabilities.maximumSize, limit > 0, request.size > limit {
            let reply = SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Message size \(request.size) exceeds the remote server's limit of \(limit) octets")
            return .finished(Array(repeating: .failed(reply), count: request.recipients.count))
        }
        if request.parameters.isSMTPUTF8 && request.needsSMTPUTF8 && !capabilities.supportsSMTPUTF8 {
            // RFC 6531 §3.2: the message cannot be sent to a server without SMTPUTF8.
            return .finished(Array(repeating: .failed(MessageRequirements.smtpUTF8Refusal), count: request.recipients.count))
        }
        var transaction = Transaction(request: request, isPipelined: capabilities.supportsPipelining)
        var commands = mailCommand(request, capabilities)
        transaction.expected = [.mail]
        if transaction.isPipelined {
            for index in request.recipients.indices {
                commands += recipientCommand(request.recipients[index], capabilities)
                transaction.expected.append(.recipient(index))
            }
            commands += "DATA\r\n"
            transaction.expected.append(.data)
        }
        needsReset = true
        state = .transaction(transaction)
        return .send(commands)
    }

    /// The message text and its final `.` have been written.
    public mutating func messageSent() -> Action {
        guard case .sendingMessage(let transaction) = state else { preconditionFailure("messageSent outside DATA") }
        state = .finalReply(transaction)
        return .wait
    }

    /// Ends the session politely.
    public mutating func quit() -> Action {
        switch state {
        case .closed, .quitting:
            return .close
        default:
            state = .quitting
            return .send("QUIT\r\n")
        }
    }

    /// The connection broke or timed out.
    public mutating func connectionLost() {
        state = .closed
    }

    // MARK: - The transaction

    private mutating func receiveInTransaction(_ reply: SMTPReply, _ transaction: inout Transaction) -> Action {
        guard !transaction.expected.isEmpty else { return failHost(reply) }
        let expectation = transaction.expected.removeFirst()
        if reply.code == 421 { return failHost(reply) }
        let capabilities = self.capabilities!
        switch expectation {
        case .mail:
            transaction.mailReply = reply
            if !reply.isPositive {
                if reply.isTransientFailure { return failHost(reply) }
                if transaction.isPipelined {
                    // The RCPT and DATA replies that follow are refusals too; read them, then report.
                    state = .transaction(transaction)
                    return .wait
                }
                return finish(transaction, finalReply: nil)
            }
            if !transaction.isPipelined {
                transaction.expected = [.recipient(0)]
                state = .transaction(transaction)
                return .send(recipientCommand(transaction.request.recipients[0], capabilities))
            }
        case .recipient(let index):
            transaction.recipientReplies[index] = reply
            if !transaction.isPipelined {
                let next = index + 1
                if next < transaction.request.recipients.count {
                    transaction.expected = [.recipient(next)]
                    state = .transaction(transaction)
                    return .send(recipientCommand(transaction.request.recipients[next], capabilities))
                }
                if transaction.acceptedIndices.isEmpty {
                    return finish(transaction, finalReply: nil)
                }
                transaction.expected = [.data]
                state = .transaction(transaction)
                return .send("DATA\r\n")
            }
        case .data:
            if reply.code == 354 {
                if transaction.acceptedIndices.isEmpty || transaction.mailReply?.isPositive != true {
                    // RFC 2920 §3.1: a server that accepts DATA with no valid recipient gets an empty message.
                    transaction.isDiscardingText = true
                    state = .finalReply(transaction)
                    return .send(".\r\n")
                }
                state = .sendingMessage(transaction)
                return .sendMessage
            }
            return finish(transaction, finalReply: transaction.acceptedIndices.isEmpty ? nil : reply)
        }
        state = .transaction(transaction)
        return transaction.expected.isEmpty ? finish(transaction, finalReply: nil) : .wait
    }

    /// Every recipient's outcome: its own RCPT refusal, or the fate of the message text.
    private mutating func finish(_ transaction: Transaction, finalReply: SMTPReply?) -> Action {
        var outcomes: [RecipientOutcome] = []
        let mailReply = transaction.mailReply
        for index in transaction.request.recipients.indices {
            let reply: SMTPReply
            if let mailReply, !mailReply.isPositive {
                reply = mailReply
            } else if let recipientReply = transaction.recipientReplies[index], !recipientReply.isPositive {
                reply = recipientReply
            } else if let finalReply {
                reply = finalReply
            } else {
                reply = transaction.recipientReplies[index] ?? SMTPReply(451, EnhancedStatusCode(4, 5, 0), "No reply from the server")
            }
            if reply.isPositive {
                outcomes.append(finalReply?.isPositive == true ? .delivered(reply) : .deferred(SMTPReply(451, EnhancedStatusCode(4, 5, 0), "Transaction not completed")))
            } else if reply.isTransientFailure {
                outcomes.append(.deferred(reply))
            } else {
                outcomes.append(.failed(reply))
            }
        }
        needsReset = finalReply == nil
        state = .ready
        return .finished(outcomes)
    }

    private mutating func failHost(_ reply: SMTPReply, isLocal: Bool = false) -> Action {
        state = .failed
        isHostFailureLocal = isLocal
        return .hostFailed(reply)
    }

    // MARK: - Commands

    private func mailCommand(_ request: OutboundTransaction, _ capabilities: ServerCapabilities) -> String {
        var line = "MAIL FROM:<\(request.reversePath)>"
        if capabilities.maximumSize != nil { line += " SIZE=\(request.size)" }
        if let body = request.parameters.body, capabilities.supports8BitMIME { line += " BODY=\(body.rawValue)" }
        // RFC 6531 §3.4: a message that needs nothing non-ASCII goes on without the parameter.
        if request.parameters.isSMTPUTF8 && capabilities.supportsSMTPUTF8 { line += " SMTPUTF8" }
        if capabilities.supportsDSN {
            if let ret = request.parameters.dsnReturn { line += " RET=\(ret.rawValue)" }
            if let envid = request.parameters.dsnEnvelopeID { line += " ENVID=\(envid)" }
        }
        return line + "\r\n"
    }

    private func recipientCommand(_ recipient: OutboundRecipient, _ capabilities: ServerCapabilities) -> String {
        var line = "RCPT TO:<\(recipient.address)>"
        if capabilities.supportsDSN {
            if let notify = recipient.parameters.notify { line += " NOTIFY=\(notify.keyword)" }
            if let orcpt = recipient.parameters.originalRecipient { line += " ORCPT=\(orcpt)" }
        }
        return line + "\r\n"
    }
}
