import NIOCore

/// The server side of one SMTP session (RFC 5321 §3, §4.1.4), as a state machine with no I/O.
///
/// The NIO layer feeds it events (a command line, the end of the message text, the queue's answer, a
/// timeout) and performs the ``Action`` each returns. Every reply it writes carries an enhanced status
/// code (RFC 2034 §3), except the `220` greeting, the EHLO reply and the `354` intermediate reply.
public struct ServerSession: Sendable {
    public enum Action: Hashable, Sendable {
        /// Write the reply and read on.
        case reply(SMTPReply)
        /// Write the reply, then close the connection.
        case replyAndClose(SMTPReply)
        /// Write the `354` reply and decode message text until `<CRLF>.<CRLF>`, then call
        /// ``ServerSession/dataFinished(_:)``.
        case beginData(SMTPReply)
        /// Store the message durably, then call ``ServerSession/enqueued(queueID:)`` or
        /// ``ServerSession/enqueueFailed()``. Nothing may be read until then.
        case enqueue(Envelope, MissingHeaders)
        /// Write the `220` reply, throw away any input already received (RFC 3207 §6: it was sent before
        /// the handshake), start TLS, then call ``ServerSession/tlsEstablished(description:)``.
        case startTLS(SMTPReply)
        /// Check these credentials (off the event loop), then call ``ServerSession/authenticated(user:allowedSenders:)``
        /// or ``ServerSession/authenticationFailed(throttled:)``. Nothing may be read until then.
        case verifyCredentials(user: String, password: String)
    }

    /// Header fields the server adds to a submission that lacks them (RFC 5321 §6.4, RFC 6409 §8).
    public struct MissingHeaders: OptionSet, Hashable, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let date = MissingHeaders(rawValue: 1)
        public static let messageID = MissingHeaders(rawValue: 2)
    }

    /// What the DATA decoder learned about the message text.
    public struct DataSummary: Hashable, Sendable {
        public var size: Int
        public var exceededMaximumSize: Bool
        public var sawBareLineEnding: Bool
        public var sawNUL: Bool
        public var receivedCount: Int
        public var hasDate: Bool
        public var hasMessageID: Bool

        public init(size: Int, exceededMaximumSize: Bool, sawBareLineEnding: Bool, sawNUL: Bool = false,
                    receivedCount: Int, hasDate: Bool, hasMessageID: Bool) {
            self.size = size
            self.exceededMaximumSize = exceededMaximumSize
            self.sawBareLineEnding = sawBareLineEnding
            self.sawNUL = sawNUL
            self.receivedCount = receivedCount
            self.hasDate = hasDate
            self.hasMessageID = hasMessageID
        }

        public init(decoder: DataDecoder, headers: HeaderSectionScanner) {
            self.init(
                size: decoder.decodedSize,
                exceededMaximumSize: decoder.exceededMaximumSize,
                sawBareLineEnding: decoder.sawBareLineEnding,
                sawNUL: decoder.sawNUL,
                receivedCount: headers.receivedCount,
                hasDate: headers.hasDate,
                hasMessageID: headers.hasMessageID
            )
        }
    }

    private struct Greeting: Sendable {
        var name: String
        var isExtended: Bool
    }

    private struct Transaction: Sendable {
        var reversePath: Mailbox?
        var parameters: MailParameters
        var recipients: [EnvelopeRecipient] = []
        var rejectedRecipients = 0
    }

    /// Where a SASL exchange stands (RFC 4954 §4).
    private enum SASLStep: Sendable, Hashable {
        case plainResponse
        case loginUsername
        case loginPassword(user: String)
    }

    private enum State: Sendable, Hashable {
        case commands
        case data
        case enqueueing
        case startingTLS
        case authenticating(SASLStep)
        case verifying
        case closed
    }

    public let configuration: ServerSessionConfiguration
    public let clientAddress: String
    public let relayPolicy: RelayPolicy
    private var state = State.commands
    private var greeting: Greeting?
    private var transaction: Transaction?
    private var errorCount = 0
    private var authFailures = 0
    public private(set) var isTLSActive = false
    public private(set) var tlsDescription: String?
    public private(set) var authenticatedUser: String?
    private var allowedSenders = AllowedSenders([])

    public init(configuration: ServerSessionConfiguration, clientAddress: String, relayPolicy: RelayPolicy) {
        self.configuration = configuration
        self.clientAddress = clientAddress
        self.relayPolicy = relayPolicy
    }


    /// `true` while message text is being read.
    public var isReadingData: Bool { state == .data }
    public var isClosed: Bool { state == .closed }

    // MARK: - Events

    /// The connection is open: RFC 5321 §4.2 `220 <domain> ESMTP`.
    public func greetingReply() -> SMTPReply {
        SMTPReply(220, nil, "\(configuration.hostname) ESMTP")
    }

    /// One command line as framed, without its CRLF. A line with a bare CR or LF in it, or that is not
    /// UTF-8, is refused whole (RFC 5321 §2.3.8; RFC 6531 §3.3 allows UTF-8 only).
    public mutating func receive(line: ByteBuffer) -> Action {
        if case .authenticating(let step) = state {
            return receiveSASL(line, step: step)
        }
        precondition(state == .commands, "a command line arrived while the session was in state \(state)")
        guard !line.readableBytesView.contains(where: { $0 == .cr || $0 == .lf }) else {
            return reject(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: bare CR or LF in command line"))
        }
        guard line.readableBytes + 2 <= Self.lineLimit(for: line) else {
            return receiveOverlongLine()
        }
        guard let text = String(validating: line.readableBytesView, as: UTF8.self) else {
            return reject(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: command line is not valid UTF-8"))
        }
        return receive(line: Substring(text))
    }

    /// RFC 5321 §4.5.3.1.4: 512 octets with the CRLF, raised for `MAIL` and `RCPT` by the octets
    /// their ESMTP parameters may add (see ``SMTPLimits``).
    static func lineLimit(for line: ByteBuffer) -> Int {
        let verb = line.readableBytesView.prefix(5).map { $0 & 0xDF }
        if verb.starts(with: "MAIL ".utf8.map { $0 & 0xDF }) { return SMTPLimits.mailCommandLineLength }
        if verb.starts(with: "RCPT ".utf8.map { $0 & 0xDF }) { return SMTPLimits.recipientCommandLineLength }
        if verb.starts(with: "AUTH ".utf8.map { $0 & 0xDF }) { return SMTPLimits.mailCommandLineLength }
        return SMTPLimits.commandLineLength
    }

    /// One command line, without its CRLF.
    public mutating func receive(line: Substring) -> Action {
        precondition(state == .commands, "a command line arrived while the session was in state \(state)")
        let command: SMTPCommand
        do {
            command = try SMTPCommand(parsing: line)
        } catch {
            return reject(Self.reply(for: error, in: line))
        }
        return receive(command)
    }

    /// A line longer than the command-line limit (RFC 5321 §4.5.3.1.4).
    public mutating func receiveOverlongLine() -> Action {
        if case .authenticating = state {
            // A SASL response longer than any line we take is no valid response.
            return malformedSASL()
        }
        precondition(state == .commands)
        return reject(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: line too long"))
    }

    /// The end of the message text: `<CRLF>.<CRLF>` was read.
    public mutating func dataFinished(_ summary: DataSummary) -> Action {
        precondition(state == .data, "data finished outside DATA")
        guard let transaction, let greeting else { preconditionFailure("DATA without a transaction") }
        state = .commands
        if summary.exceededMaximumSize {
            return abortTransaction(SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Error: message size exceeds fixed maximum message size"))
        }
        if summary.sawBareLineEnding && configuration.lineEndingPolicy == .reject {
            return abortTransaction(SMTPReply(550, EnhancedStatusCode(5, 6, 0),
                "Error: message contains a bare CR or LF line ending; lines must end with CRLF (RFC 5321 §2.3.8)"))
        }
        if summary.sawNUL && configuration.lineEndingPolicy == .reject {
            return abortTransaction(SMTPReply(550, EnhancedStatusCode(5, 6, 0),
                "Error: message contains a NUL octet, which message text may not (RFC 5322 §3.5)"))
        }
        if summary.receivedCount > configuration.maximumReceivedHeaders {
            return abortTransaction(SMTPReply(554, EnhancedStatusCode(5, 4, 6), "Error: too many Received headers - mail loop"))
        }
        var missing: MissingHeaders = []
        if relayPolicy.clientMayRelay || authenticatedUser != nil {
            if !summary.hasDate { missing.insert(.date) }
            if !summary.hasMessageID { missing.insert(.messageID) }
        }
        state = .enqueueing
        let protocolName = TraceHeaders.protocolName(
            isExtended: greeting.isExtended, isTLS: isTLSActive, isAuthenticated: authenticatedUser != nil,
            isSMTPUTF8: transaction.parameters.isSMTPUTF8
        )
        let envelope = Envelope(
            reversePath: transaction.reversePath,
            parameters: transaction.parameters,
            recipients: transaction.recipients,
            client: ClientIdentity(address: clientAddress, greetingName: greeting.name, protocolName: protocolName,
                                   tlsDescription: tlsDescription, authenticatedUser: authenticatedUser)
        )
        return .enqueue(envelope, missing)
    }

    /// The queue holds the message durably: RFC 5321 §4.1.1.4, the `250` that takes responsibility.
    public mutating func enqueued(queueID: String) -> Action {
        precondition(state == .enqueueing)
        state = .commands
        transaction = nil
        return .reply(SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: queued as \(queueID)"))
    }

    /// The queue could not store the message (disk full, I/O error): RFC 3463 `4.3.1`.
    public mutating func enqueueFailed() -> Action {
        precondition(state == .enqueueing)
        state = .commands
        transaction = nil
        return .reply(SMTPReply(452, EnhancedStatusCode(4, 3, 1), "Error: insufficient system storage"))
    }

    /// The TLS handshake is done (RFC 3207 §4.2): the session starts over, and the client must say EHLO again.
    public mutating func tlsEstablished(description: String) {
        precondition(state == .startingTLS || (state == .commands && greeting == nil), "TLS outside STARTTLS or an implicit-TLS start")
        state = .commands
        isTLSActive = true
        tlsDescription = description
        greeting = nil
        transaction = nil
    }

    /// The credentials were right (RFC 4954 §6: `235`).
    public mutating func authenticated(user: String, allowedSenders: [String]) -> Action {
        precondition(state == .verifying)
        state = .commands
        authenticatedUser = user
        self.allowedSenders = AllowedSenders(allowedSenders)
        return .reply(SMTPReply(235, EnhancedStatusCode(2, 7, 0), "Authentication successful"))
    }

    /// The credentials were wrong (`535 5.7.8`), or the client's address has failed too often lately
    /// (`454 4.7.0`). After a few failures the client is disconnected.
    public mutating func authenticationFailed(throttled: Bool = false) -> Action {
        precondition(state == .verifying)
        state = .commands
        authFailures += 1
        if authFailures >= configuration.maximumAuthFailures {
            return close(SMTPReply(421, EnhancedStatusCode(4, 7, 0), "\(configuration.hostname) Error: too many failed authentications"))
        }
        if throttled {
            return .reply(SMTPReply(454, EnhancedStatusCode(4, 7, 0), "Temporary authentication failure: too many failures from your address, try later"))
        }
        return .reply(SMTPReply(535, EnhancedStatusCode(5, 7, 8), "Authentication credentials invalid"))
    }

    /// The credentials could not be checked now (the server's password checks are saturated): RFC 4954 §6
    /// `454 4.7.0`, temporary authentication failure. It is not counted as a failure.
    public mutating func authenticationUnavailable() -> Action {
        precondition(state == .verifying)
        state = .commands
        return .reply(SMTPReply(454, EnhancedStatusCode(4, 7, 0), "Temporary authentication failure, try again later"))
    }

    /// RFC 5321 §4.5.3.2: the client was silent for too long.
    public mutating func timedOut() -> Action {
        close(SMTPReply(421, EnhancedStatusCode(4, 4, 2), "\(configuration.hostname) Error: timeout exceeded"))
    }

    /// The server is shutting down: the next command is answered with `421 4.3.2` (RFC 5321 §3.8).
    public mutating func shuttingDown() -> Action {
        close(SMTPReply(421, EnhancedStatusCode(4, 3, 2), "\(configuration.hostname) Service shutting down, closing transmission channel"))
    }

    // MARK: - Commands

    private mutating func receive(_ command: SMTPCommand) -> Action {
        switch command {
        case .ehlo(let name):
            greeting = Greeting(name: name, isExtended: true)
            transaction = nil
            var lines = [
                "\(configuration.hostname) greets \(name)",
                "PIPELINING",
                "SIZE \(configuration.maximumMessageSize)",
                "8BITMIME",
                "ENHANCEDSTATUSCODES",
                "SMTPUTF8",
                "DSN",
            ]
            if configuration.isSTARTTLSAvailable && !isTLSActive { lines.append("STARTTLS") }
            if configuration.isAuthAvailable && isTLSActive && authenticatedUser == nil { lines.append("AUTH PLAIN LOGIN") }
            return .reply(SMTPReply(250, nil, lines))
        case .helo(let name):
            greeting = Greeting(name: name, isExtended: false)
            transaction = nil
            return .reply(SMTPReply(250, nil, configuration.hostname))
        case .mail(let reversePath, let parameters):
            return mail(from: reversePath, parameters: parameters)
        case .recipient(let mailbox, let parameters):
            return recipient(mailbox, parameters: parameters)
        case .data:
            return data()
        case .reset:
            transaction = nil
            return .reply(SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok"))
        case .noop:
            return .reply(SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok"))
        case .quit:
            return close(SMTPReply(221, EnhancedStatusCode(2, 0, 0), "Bye"))
        case .help:
            return .reply(SMTPReply(214, EnhancedStatusCode(2, 0, 0), "See RFC 5321: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY"))
        case .verify:
            // RFC 5321 §3.5.3: 252 neither confirms nor denies that the mailbox exists.
            return .reply(SMTPReply(252, EnhancedStatusCode(2, 5, 0), "Cannot VRFY user, but will accept message and attempt delivery"))
        case .expand:
            return reject(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "Error: command not implemented"))
        case .startTLS:
            return startTLS()
        case .auth(let argument):
            return auth(argument)
        }
    }

    private mutating func mail(from reversePath: Mailbox?, parameters: MailParameters) -> Action {
        guard greeting != nil else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: send HELO/EHLO first"))
        }
        if configuration.requiresAuthentication && authenticatedUser == nil {
            // RFC 4954 §6, RFC 6409 §4.3.
            return reject(SMTPReply(530, EnhancedStatusCode(5, 7, 0), "Authentication required"))
        }
        if authenticatedUser != nil {
            let address = reversePath?.description.lowercased() ?? ""
            if !allowedSenders.permits(address) {
                return reject(SMTPReply(553, EnhancedStatusCode(5, 7, 1), "<\(address)>: Sender address rejected: not owned by user \(authenticatedUser!)"))
            }
        }
        guard transaction == nil else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: nested MAIL command"))
        }
        if let size = parameters.declaredSize, size > configuration.maximumMessageSize {
            return reject(SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Error: message size exceeds fixed maximum message size"))
        }
        if let reversePath, reversePath.requiresSMTPUTF8, !parameters.isSMTPUTF8 {
            return reject(SMTPReply(553, EnhancedStatusCode(5, 6, 7), "Error: non-ASCII sender address requires SMTPUTF8"))
        }
        transaction = Transaction(reversePath: reversePath, parameters: parameters)
        return .reply(SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok"))
    }

    private mutating func recipient(_ mailbox: Mailbox, parameters: RecipientParameters) -> Action {
        guard var transaction else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need MAIL command"))
        }
        if mailbox.requiresSMTPUTF8, !transaction.parameters.isSMTPUTF8 {
            return rejectRecipient(SMTPReply(553, EnhancedStatusCode(5, 6, 7), "<\(mailbox)>: non-ASCII recipient address requires SMTPUTF8"))
        }
        guard authenticatedUser != nil || relayPolicy.permits(mailbox) else {
            return rejectRecipient(SMTPReply(550, EnhancedStatusCode(5, 7, 1), "<\(mailbox)>: Relay access denied"))
        }
        guard transaction.recipients.count < configuration.maximumRecipients else {
            // RFC 5321 §4.5.3.1.10: "452 too many recipients", and the client sends the rest later.
            return .reply(SMTPReply(452, EnhancedStatusCode(4, 5, 3), "Error: too many recipients"))
        }
        transaction.recipients.append(EnvelopeRecipient(mailbox: mailbox, parameters: parameters))
        self.transaction = transaction
        return .reply(SMTPReply(250, EnhancedStatusCode(2, 1, 5), "Ok"))
    }

    private mutating func data() -> Action {
        guard let transaction else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need MAIL command"))
        }
        guard !transaction.recipients.isEmpty else {
            // RFC 2920 §3.1: with pipelining, DATA after only failed RCPTs must fail.
            if transaction.rejectedRecipients > 0 {
                return .reply(SMTPReply(554, EnhancedStatusCode(5, 5, 1), "Error: no valid recipients"))
            }
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need RCPT command"))
        }
        state = .data
        return .beginData(SMTPReply(354, nil, "End data with <CR><LF>.<CR><LF>"))
    }

    // MARK: - STARTTLS and AUTH

    /// RFC 3207 §4.
    private mutating func startTLS() -> Action {
        guard configuration.isSTARTTLSAvailable else {
            return reject(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "Error: command not implemented"))
        }
        guard !isTLSActive else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: TLS already active"))
        }
        guard transaction == nil else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: MAIL transaction in progress"))
        }
        state = .startingTLS
        return .startTLS(SMTPReply(220, EnhancedStatusCode(2, 0, 0), "Ready to start TLS"))
    }

    /// RFC 4954 §4: `AUTH mechanism [initial-response]`, PLAIN (RFC 4616) or LOGIN.
    private mutating func auth(_ argument: String) -> Action {
        guard configuration.isAuthAvailable else {
            return reject(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "Error: authentication not enabled"))
        }
        guard isTLSActive else {
            // RFC 4954 §6: the mechanism needs an encrypted channel.
            return reject(SMTPReply(538, EnhancedStatusCode(5, 7, 11), "Encryption required for requested authentication mechanism"))
        }
        guard greeting?.isExtended == true else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: send EHLO first"))
        }
        guard authenticatedUser == nil else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: already authenticated"))
        }
        guard transaction == nil else {
            return reject(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: MAIL transaction in progress"))
        }
        let words = argument.split(separator: " ", omittingEmptySubsequences: true)
        let mechanism = words.first?.asciiUppercased ?? ""
        let initial = words.count > 1 ? String(words[1]) : nil
        switch mechanism {
        case "PLAIN":
            guard let initial else {
                state = .authenticating(.plainResponse)
                return .reply(SMTPReply(334, nil, ""))
            }
            return plainResponse(initial == "=" ? "" : initial)
        case "LOGIN":
            guard let initial else {
                state = .authenticating(.loginUsername)
                return .reply(SMTPReply(334, nil, "VXNlcm5hbWU6"))  // "Username:"
            }
            return loginUsername(initial)
        default:
            return reject(SMTPReply(504, EnhancedStatusCode(5, 5, 4), "Error: unsupported authentication mechanism"))
        }
    }

    private mutating func receiveSASL(_ line: ByteBuffer, step: SASLStep) -> Action {
        let text = String(decoding: line.readableBytesView, as: UTF8.self)
        state = .commands
        if text == "*" {
            return reject(SMTPReply(501, EnhancedStatusCode(5, 7, 0), "Authentication cancelled"))
        }
        switch step {
        case .plainResponse: return plainResponse(text)
        case .loginUsername: return loginUsername(text)
        case .loginPassword(let user): return loginPassword(text, user: user)
        }
    }

    /// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`.
    private mutating func plainResponse(_ encoded: String) -> Action {
        guard let decoded = Base64.decode(encoded) else { return malformedSASL() }
        let parts = decoded.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3,
              let authzid = String(validating: parts[0], as: UTF8.self),
              let user = String(validating: parts[1], as: UTF8.self),
              let password = String(validating: parts[2], as: UTF8.self),
              !user.isEmpty, authzid.isEmpty || authzid == user else {
            return malformedSASL()
        }
        state = .verifying
        return .verifyCredentials(user: user, password: password)
    }

    private mutating func loginUsername(_ encoded: String) -> Action {
        guard let decoded = Base64.decode(encoded), let user = String(validating: decoded, as: UTF8.self), !user.isEmpty else {
            return malformedSASL()
        }
        state = .authenticating(.loginPassword(user: user))
        return .reply(SMTPReply(334, nil, "UGFzc3dvcmQ6"))  // "Password:"
    }

    private mutating func loginPassword(_ encoded: String, user: String) -> Action {
        guard let decoded = Base64.decode(encoded), let password = String(validating: decoded, as: UTF8.self) else {
            return malformedSASL()
        }
        state = .verifying
        return .verifyCredentials(user: user, password: password)
    }

    private mutating func malformedSASL() -> Action {
        state = .commands
        return reject(SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Error: malformed authentication response"))
    }

    // MARK: - Helpers

    private mutating func rejectRecipient(_ reply: SMTPReply) -> Action {
        transaction?.rejectedRecipients += 1
        return reject(reply)
    }

    private mutating func abortTransaction(_ reply: SMTPReply) -> Action {
        transaction = nil
        return .reply(reply)
    }

    /// A refused command: counted, and after too many the client is disconnected.
    private mutating func reject(_ reply: SMTPReply) -> Action {
        errorCount += 1
        if errorCount > configuration.maximumErrors {
            return close(SMTPReply(421, EnhancedStatusCode(4, 7, 0), "\(configuration.hostname) Error: too many errors"))
        }
        return .reply(reply)
    }

    private mutating func close(_ reply: SMTPReply) -> Action {
        state = .closed
        return .replyAndClose(reply)
    }

    static func reply(for error: SMTPSyntaxError, in line: Substring) -> SMTPReply {
        let isRecipient = line.prefix(4).asciiUppercased == "RCPT"
        switch error {
        case .unknownCommand:
            return SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: command not recognized")
        case .malformedCommand:
            return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Error: syntax error in parameters or arguments")
        case .malformedPath, .malformedDomain, .pathTooLong, .invalidUTF8:
            return isRecipient
                ? SMTPReply(501, EnhancedStatusCode(5, 1, 3), "Error: bad recipient address syntax")
                : SMTPReply(501, EnhancedStatusCode(5, 1, 7), "Error: bad sender address syntax")
        case .unknownParameter(let key):
            return SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Error: unsupported parameter \(key)")
        case .malformedParameter(let key), .duplicateParameter(let key):
            return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Error: bad parameter \(key)")
        }
    }
}
