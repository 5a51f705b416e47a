#if canImport(Glibc)
import Glibc
#endif
import MailQueue
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PetrelConfig
import SMTPProtocol
import SMTPTransport

/// Timeouts for the client (RFC 5321 §4.5.3.2).
public struct ClientTimeouts: Sendable, Hashable {
    public var connect: Duration
    /// Greeting, EHLO, MAIL, RCPT, RSET, QUIT: five minutes by the RFC.
    public var command: Duration
    /// The `354` to DATA: two minutes by the RFC.
    public var dataInitiation: Duration
    /// The reply after the final `.`: ten minutes by the RFC; also bounds sending the text.
    public var dataTermination: Duration

    public init(connect: Duration = .seconds(30), command: Duration = .seconds(300),
                dataInitiation: Duration = .seconds(120), dataTermination: Duration = .seconds(600)) {
        self.connect = connect
        self.command = command
        self.dataInitiation = dataInitiation
        self.dataTermination = dataTermination
    }
}

/// Why a host could not take a message: the server's reply, or a local error (connection failures as
/// `4.4.1`/`4.4.2`, TLS as `4.7.x`) carried in a reply the relay made up; ``isRemoteReply`` tells which.
public struct HostFailure: Error, Sendable {
    public var reply: SMTPReply
    /// `true` when the server itself said ``reply``; otherwise no server answered and the reply is ours.
    public var isRemoteReply: Bool
    /// `true` when the connection died before the server said anything about this transaction: a cached
    /// connection that the server had closed, worth one more try on a fresh connection.
    public var isStaleConnection: Bool
    /// `true` when the TLS handshake failed: under opportunistic TLS the next try goes in plaintext.
    public var isTLSFailure: Bool
    /// `true` when the fault is ours (the spool file could not be read): another host would fare no
    /// better, so the attempt ends and the message is deferred.
    public var isLocalFailure: Bool

    init(_ reply: SMTPReply, isRemoteReply: Bool = false, isStaleConnection: Bool = false, isTLSFailure: Bool = false,
         isLocalFailure: Bool = false) {
        self.reply = reply
        self.isRemoteReply = isRemoteReply
        self.isStaleConnection = isStaleConnection
        self.isTLSFailure = isTLSFailure
        self.isLocalFailure = isLocalFailure
    }
}

/// One client connection to a next hop, driven by the ``ClientSession`` state machine.
///
/// Who owns what: the channel's streams are used only inside `executeThenClose`, by one child task of
/// ``ConnectionTasks`` (the delivery engine's task group for connections) that holds the conversation for
/// the connection's whole life. This class is only the handle that the workers and the ``ConnectionCache``
/// pass from job to job. Each request (the greeting, a transaction) goes to the connection's task through a
/// one-slot ``ConnectionMailbox`` and is answered when it is done; one user at a time holds the handle, so
/// at most one request is ever waiting. ``close()``, ``quit()`` or dropping the handle ends the task, and
/// the group waits for it (a `QUIT` is said and answered in that task, not in the caller's).
final class OutboundConnection: Sendable {
    let relay: String
    let key: String
    private let mailbox = ConnectionMailbox()
    private let status = NIOLockedValueBox(Status())

    /// What the connection's task tells the handle after each request, before it answers.
    fileprivate struct Status {
        var capabilities: ServerCapabilities?
        var tlsVersion: String?
        var isReusable = false
        var transactionCount = 0
    }

    var capabilities: ServerCapabilities? { status.withLockedValue { $0.capabilities } }
    /// The TLS version once encrypted, as `TLSv1.3`.
    var tlsVersion: String? { status.withLockedValue { $0.tlsVersion } }
    var transactionCount: Int { status.withLockedValue { $0.transactionCount } }
    var isReusable: Bool { status.withLockedValue { $0.isReusable } }

    private init(relay: String, key: String) {
        self.relay = relay
        self.key = key
    }

    deinit {
        mailbox.close()
    }

    /// Connects, starts the connection's task in `tasks`, reads the greeting and says EHLO (or HELO).
    /// Throws ``HostFailure``.
    ///
    /// - Parameters:
    ///   - idleTimeout: the read timeout between transactions, while the connection waits for no reply
    ///     (parked in the cache): longer than the cache keeps it, so no stale timeout waits in its input.
    ///   - spoolReader: how spooled text is read; tests inject failing reads.
    static func open(hostName: String, address: String, port: Int, heloName: String, timeouts: ClientTimeouts,
                     security: ClientSession.Security = .plaintext, tls: ClientTLS? = nil, idleTimeout: Duration = .seconds(70),
                     spoolReader: SpoolFileReader = SpoolFileReader(), in tasks: ConnectionTasks) async throws -> OutboundConnection {
        let relay = "\(hostName)[\(address)]:\(port)"
        let target: SocketAddress
        do {
            target = try SocketAddress(ipAddress: address, port: port)
        } catch {
            throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 1), "bad address \(address)"))
        }
        let connected: (NIOAsyncChannel<ConnectionEvent, ByteBuffer>, NIOLoopBound<ConnectionGate>)
        do {
            connected = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(TimeAmount(timeouts.connect))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(to: target) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let gate = ConnectionGate(timeout: TimeAmount(timeouts.command))
                        try channel.pipeline.syncOperations.addHandler(gate)
                        let asyncChannel = try NIOAsyncChannel<ConnectionEvent, ByteBuffer>(wrappingChannelSynchronously: channel)
                        return (asyncChannel, NIOLoopBound(gate, eventLoop: channel.eventLoop))
                    }
                }
        } catch {
            throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 1), "connect to \(relay): \(Self.describe(error))"))
        }
        let (channel, gate) = connected
        let connection = OutboundConnection(relay: relay, key: "\(address):\(port)")
        let mailbox = connection.mailbox, status = connection.status
        let isStarted = tasks.start {
            await Conversation.serve(channel, gate: gate, mailbox: mailbox, status: status, setup: Conversation.Setup(
                relay: relay, hostName: hostName, heloName: heloName, timeouts: timeouts, idleTimeout: idleTimeout,
                security: security, tls: tls, spoolReader: spoolReader
            ))
        }
        guard isStarted else {
            // The engine is stopping: the channel closes here, its streams untouched.
            try? await channel.executeThenClose { _, _ in }
            throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 3, 2), "\(relay): delivery is shutting down"))
        }
        try await connection.ask { .greet($0) }
        return connection
    }

    /// Runs one transaction. Returns each recipient's outcome, or throws ``HostFailure``.
    func send(_ transaction: OutboundTransaction, content: StoredContent) async throws -> [RecipientOutcome] {
        let count = status.withLockedValue { status in
            precondition(status.isReusable, "a transaction on a connection that is not ready")
            status.transactionCount += 1
            return status.transactionCount
        }
        do {
            return try await ask { .send(transaction, content, $0) }
        } catch var failure as HostFailure {
            // Only a connection that served a transaction before can have gone stale while it was parked.
            failure.isStaleConnection = failure.isStaleConnection && count > 1
            throw failure
        }
    }

    /// Ends the connection with QUIT (its reply awaited briefly, in the connection's task).
    func quit() {
        _ = mailbox.post(.quit)
        mailbox.close()
    }

    /// Ends the connection without a word.
    func close() {
        mailbox.close()
    }

    /// Posts a request and waits for its answer; a connection whose task has ended answers as a closed one.
    private func ask<T: Sendable>(_ request: (CheckedContinuation<T, any Error>) -> ConnectionMailbox.Request) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            if !mailbox.post(request(continuation)) {
                continuation.resume(throwing: Conversation.closed(relay))
            }
        }
    }

    fileprivate static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error)
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        return "\(error)"
    }
}

/// The way in to a connection's task (see ``OutboundConnection``): one request at a time, handed over
/// directly when the task is waiting. Closing lets the task take what was posted before, then end.
final class ConnectionMailbox: Sendable {
    enum Request: Sendable {
        /// Read the greeting, say EHLO, and STARTTLS and AUTH as the security asks.
        case greet(CheckedContinuation<Void, any Error>)
        case send(OutboundTransaction, StoredContent, CheckedContinuation<[RecipientOutcome], any Error>)
        /// Say QUIT and end; no one waits for it.
        case quit

        /// Answers a request the task will never serve.
        func fail(_ failure: HostFailure) {
            switch self {
            case .greet(let continuation): continuation.resume(throwing: failure)
            case .send(_, _, let continuation): continuation.resume(throwing: failure)
            case .quit: break
            }
        }
    }

    private struct State {
        var request: Request?
        var waiter: CheckedContinuation<Request?, Never>?
        var isClosed = false
    }

    private let state = NIOLockedValueBox(State())

    /// Hands `request` to the task; `false` when the mailbox is closed.
    func post(_ request: Request) -> Bool {
        let (isPosted, waiter) = state.withLockedValue { state -> (Bool, CheckedContinuation<Request?, Never>?) in
            if state.isClosed { return (false, nil) }
            precondition(state.request == nil, "a connection serves one request at a time")
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter)
            }
            state.request = request
            return (true, nil)
        }
        waiter?.resume(returning: request)
        return isPosted
    }

    /// No more requests: the task serves what was posted before, then ends.
    func close() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Request?, Never>? in
            state.isClosed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The task's end: closes, and returns the request it will never serve.
    func end() -> Request? {
        close()
        return state.withLockedValue { state in
            defer { state.request = nil }
            return state.request
        }
    }

    /// The next request; `nil` once closed, or when the task is cancelled.
    func next() async -> Request? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Request?, Never>) in
                let immediate = state.withLockedValue { state -> Request?? in
                    if let request = state.request {
                        state.request = nil
                        return .some(request)
                    }
                    if state.isClosed || Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Request?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}

/// The conversation with one next hop, inside the connection's task: the only code that touches the
/// channel's streams, and only within `executeThenClose`.
private struct Conversation {
    struct Setup: Sendable {
        var relay: String
        var hostName: String
        var heloName: String
        var timeouts: ClientTimeouts
        var idleTimeout: Duration
        var security: ClientSession.Security
        var tls: ClientTLS?
        var spoolReader: SpoolFileReader
    }

    private let setup: Setup
    private let channel: any Channel
    private let gate: NIOLoopBound<ConnectionGate>
    private var inbound: NIOAsyncChannelInboundStream<ConnectionEvent>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var session: ClientSession
    private var parser = ReplyParser()
    private var pending = ByteBuffer()
    private(set) var tlsVersion: String?
    /// The read timeout last given to the gate.
    private var currentTimeout: Duration?
    private(set) var isBroken = false

    private var relay: String { setup.relay }
    private var timeouts: ClientTimeouts { setup.timeouts }
    var isReusable: Bool { !isBroken && session.isReady }

    static func closed(_ relay: String) -> HostFailure {
        HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 2), "\(relay): connection closed"), isStaleConnection: true)
    }

    /// The connection's task: serves requests until the handle closes, the conversation breaks, or the
    /// task is cancelled; then the channel closes (`executeThenClose`) and a request left over is failed.
    static func serve(_ channel: NIOAsyncChannel<ConnectionEvent, ByteBuffer>, gate: NIOLoopBound<ConnectionGate>,
                      mailbox: ConnectionMailbox, status: NIOLockedValueBox<OutboundConnection.Status>, setup: Setup) async {
        try? await channel.executeThenClose { inbound, outbound in
            var conversation = Conversation(setup: setup, channel: channel.channel, gate: gate,
                                            inbound: inbound.makeAsyncIterator(), outbound: outbound)
            while let request = await mailbox.next() {
                switch request {
                case .greet(let reply):
                    do {
                        try await conversation.greet()
                        conversation.report(to: status)
                        reply.resume()
                    } catch {
                        conversation.report(to: status)
                        reply.resume(throwing: error)
                    }
                case .send(let transaction, let content, let reply):
                    do {
                        let outcomes = try await conversation.send(transaction, content: content)
                        conversation.report(to: status)
                        reply.resume(returning: outcomes)
                    } catch {
                        conversation.report(to: status)
                        reply.resume(throwing: error)
                    }
                case .quit:
                    await conversation.quit()
                }
                if !conversation.isReusable { break }
            }
        }
        mailbox.end()?.fail(closed(setup.relay))
    }

    private init(setup: Setup, channel: any Channel, gate: NIOLoopBound<ConnectionGate>,
                 inbound: NIOAsyncChannelInboundStream<ConnectionEvent>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.setup = setup
        self.channel = channel
        self.gate = gate
        self.inbound = inbound
        self.outbound = outbound
        self.session = ClientSession(heloName: setup.heloName, security: setup.security)
    }

    private func report(to status: NIOLockedValueBox<OutboundConnection.Status>) {
        let (capabilities, tlsVersion, isReusable) = (session.capabilities, tlsVersion, isReusable)
        status.withLockedValue { status in
            status.capabilities = capabilities
            status.tlsVersion = tlsVersion
            status.isReusable = isReusable
        }
    }

    /// The greeting, EHLO (or HELO), and STARTTLS and AUTH when the security asks for them.
    mutating func greet() async throws {
        do {
            let action = try await perform(try await nextReplyAction(), content: nil)
            guard case .ready = action else { throw await failure(after: action, unexpected: "unexpected state after greeting") }
            setTimeout(setup.idleTimeout)
        } catch {
            isBroken = true
            throw error
        }
    }

    mutating func send(_ transaction: OutboundTransaction, content: StoredContent) async throws -> [RecipientOutcome] {
        precondition(session.isReady)
        do {
            let action = try await perform(session.start(transaction), content: content, size: transaction.size)
            guard case .finished(let outcomes) = action else { throw await failure(after: action, unexpected: "protocol error") }
            // Parked next, waiting for no reply: the read timer is pushed out of the way.
            setTimeout(setup.idleTimeout)
            return outcomes
        } catch {
            isBroken = true
            throw error
        }
    }

    /// What an exchange that did not end as expected fails with: a host failure says QUIT and is marked as
    /// the host's reply or the client's own finding; any other state is a protocol error of ours.
    private mutating func failure(after action: ClientSession.Action, unexpected: String) async -> HostFailure {
        if case .hostFailed(let reply) = action {
            let isRemoteReply = !session.isHostFailureLocal
            await quit()
            return HostFailure(reply, isRemoteReply: isRemoteReply)
        }
        return HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 0), "\(relay): \(unexpected)"))
    }

    /// Sends QUIT and waits briefly for its reply; the channel closes when the task ends.
    mutating func quit() async {
        if !isBroken, case .send(let text) = session.quit() {
            setTimeout(.seconds(5))
            try? await outbound.write(ByteBuffer(string: text))
            _ = try? await readReply()
        }
        isBroken = true
        session.connectionLost()
    }

    // MARK: - The conversation

    /// Performs actions until the session needs the caller: ready, finished, failed or closed.
    private mutating func perform(_ first: ClientSession.Action, content: StoredContent?, size: Int = 0) async throws -> ClientSession.Action {
        var action = first
        while true {
            switch action {
            case .send(let text):
                try await write(ByteBuffer(string: text))
                action = try await nextReplyAction()
            case .wait:
                action = try await nextReplyAction()
            case .sendMessage:
                guard let content else { preconditionFailure("message text asked for outside a transaction") }
                setTimeout(timeouts.dataTermination)
                try await sendText(content, size: size)
                // RFC 5321 §4.5.3.2.6: the wait for the reply to the final dot gets the whole timeout, however
                // long sending took (writes do not move the gate's clock): the next setTimeout must re-arm.
                currentTimeout = nil
                action = session.messageSent()
            case .startTLS:
                try await handshake()
                action = session.tlsEstablished()
            case .ready, .finished, .hostFailed, .close:
                return action
            }
        }
    }

    /// RFC 3207: adds the TLS handler in front of the gate and waits for the handshake.
    private mutating func handshake() async throws {
        guard let tls = setup.tls else {
            throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "\(relay): STARTTLS without a TLS context"), isTLSFailure: true)
        }
        let gate = self.gate
        let hostName = setup.hostName
        do {
            try await channel.eventLoop.submit {
                let handler = try NIOSSLClientHandler(context: tls.context, serverHostname: tls.verifiesCertificate && IPAddress(hostName) == nil ? hostName : nil)
                try gate.value.startTLS(handler)
            }.get()
        } catch {
            throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "\(relay): cannot start TLS: \(error)"), isTLSFailure: true)
        }
        setTimeout(timeouts.command)
        while true {
            let event: ConnectionEvent?
            do {
                event = try await inbound.next()
            } catch {
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "\(relay): TLS handshake failed: \(OutboundConnection.describe(error))"), isTLSFailure: true)
            }
            switch event {
            case .tlsEstablished(let version):
                tlsVersion = version
                pending.clear()
                return
            case .tlsFailed(let reason):
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "\(relay): TLS handshake failed: \(reason)"), isTLSFailure: true)
            case .timedOut:
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 2), "\(relay): timeout in the TLS handshake"), isTLSFailure: true)
            case nil:
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "\(relay): connection closed in the TLS handshake"), isTLSFailure: true)
            case .bytes, .shutdown:
                continue
            }
        }
    }

    private mutating func nextReplyAction() async throws -> ClientSession.Action {
        switch session.wait {
        case .greeting, .command: setTimeout(timeouts.command)
        case .dataInitiation: setTimeout(timeouts.dataInitiation)
        case .dataTermination: setTimeout(timeouts.dataTermination)
        }
        return session.receive(try await readReply())
    }

    private mutating func readReply() async throws -> SMTPReply {
        while true {
            do {
                if let reply = try parser.next(&pending) { return reply }
            } catch {
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 5, 0), "\(relay): malformed reply (\(error))"))
            }
            let event: ConnectionEvent?
            do {
                event = try await inbound.next()
            } catch {
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 2), "\(relay): connection lost: \(OutboundConnection.describe(error))"), isStaleConnection: true)
            }
            switch event {
            case .bytes(var bytes):
                pending.writeBuffer(&bytes)
            case .timedOut:
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 2), "\(relay): timeout waiting for a reply (\(session.wait))"))
            case .shutdown, .tlsEstablished:
                continue
            case .tlsFailed(let reason):
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "\(relay): TLS failure: \(reason)"), isTLSFailure: true)
            case nil:
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 2), "\(relay): connection closed by the server"), isStaleConnection: true)
            }
        }
    }

    private func write(_ buffer: ByteBuffer) async throws {
        do {
            try await outbound.write(buffer)
        } catch {
            throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 2), "\(relay): connection lost while sending: \(OutboundConnection.describe(error))"), isStaleConnection: true)
        }
    }

    /// The message text, dot-stuffed, then `.` (RFC 5321 §4.5.2). A spooled message is read in pieces and
    /// must be read whole: when ``SpoolFileReader`` fails, the final dot is never sent and the connection is
    /// dropped, so the next hop discards what it got (RFC 5321 §4.1.1.4) and the message stays queued.
    private func sendText(_ content: StoredContent, size: Int) async throws {
        var stuffer = DotStuffer()
        var wire = ByteBuffer()
        switch content {
        case .inline(let text):
            wire.reserveCapacity(text.readableBytes + text.readableBytes / 64 + 8)
            stuffer.stuff(text, into: &wire)
        case .spooled(let traceHeaders, let path):
            stuffer.stuff(traceHeaders, into: &wire)
            do {
                try await setup.spoolReader.forEachChunk(path: path, expectedSize: size - traceHeaders.readableBytes) { chunk in
                    stuffer.stuff(chunk, into: &wire)
                    try await write(wire)
                    wire.clear()
                }
            } catch let failure as SpoolFileReader.Failure {
                throw HostFailure(failure.reply, isLocalFailure: true)
            }
        }
        stuffer.finish(into: &wire)
        try await write(wire)
    }

    /// Sets the read timeout for the wait that starts now. The gate restarts its clock on every read, so an
    /// unchanged timeout needs no trip to the event loop (the wait then counts from the last reply, a moment
    /// earlier than the command that follows it).
    private mutating func setTimeout(_ duration: Duration) {
        guard duration != currentTimeout else { return }
        currentTimeout = duration
        let gate = self.gate
        channel.eventLoop.execute { gate.value.setTimeout(TimeAmount(duration)) }
    }
}
