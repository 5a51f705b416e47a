#if canImport(Glibc)
import Glibc
#endif
import MailQueue
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

/// One client connection to a next hop, driven by the ``ClientSession`` state machine. It is used by one
/// task at a time: a worker, or the ``ConnectionCache`` that holds it between transactions.
final class OutboundConnection: @unchecked Sendable {
    let relay: String
    let key: String
    private let channel: NIOAsyncChannel<ConnectionEvent, ByteBuffer>
    private let gate: NIOLoopBound<ConnectionGate>
    private var inbound: NIOAsyncChannelInboundStream<ConnectionEvent>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var session: ClientSession
    private var parser = ReplyParser()
    private var pending = ByteBuffer()
    private let timeouts: ClientTimeouts
    private let tls: ClientTLS?
    private let hostName: String
    /// The TLS version once encrypted, as `TLSv1.3`.
    private(set) var tlsVersion: String?
    private(set) var transactionCount = 0
    /// The read timeout last given to the gate.
    private var currentTimeout: Duration?
    private(set) var isBroken = false
    /// How spooled text is read; tests inject failing reads.
    var spoolReader = SpoolFileReader()

    var capabilities: ServerCapabilities? { session.capabilities }
    var isReusable: Bool { !isBroken && session.isReady }

    private init(relay: String, key: String, channel: NIOAsyncChannel<ConnectionEvent, ByteBuffer>, gate: NIOLoopBound<ConnectionGate>,
                 heloName: String, hostName: String, timeouts: ClientTimeouts, security: ClientSession.Security, tls: ClientTLS?) throws {
        self.relay = relay
        self.hostName = hostName
        self.tls = tls
        self.key = key
        self.channel = channel
        self.gate = gate
        self.timeouts = timeouts
        self.session = ClientSession(heloName: heloName, security: security)
        // A connection outlives the task that opened it (the cache hands it from job to job), so it cannot
        // live inside `executeThenClose`; it owns the channel for its whole life and `close()` ends it.
        let streams = Self.streams(of: channel)
        self.inbound = streams.inbound.makeAsyncIterator()
        self.outbound = streams.outbound
    }

    @available(*, deprecated, message: "the one place the connection takes its streams outside executeThenClose")
    private static func streams(of channel: NIOAsyncChannel<ConnectionEvent, ByteBuffer>)
        -> (inbound: NIOAsyncChannelInboundStream<ConnectionEvent>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        (channel.inbound, channel.outbound)
    }

    /// Connects, reads the greeting and says EHLO (or HELO). Throws ``HostFailure``.
    static func open(hostName: String, address: String, port: Int, heloName: String, timeouts: ClientTimeouts,
                     security: ClientSession.Security = .plaintext, tls: ClientTLS? = nil) async throws -> OutboundConnection {
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
        let connection = try OutboundConnection(relay: relay, key: "\(address):\(port)", channel: connected.0, gate: connected.1,
                                                heloName: heloName, hostName: hostName, timeouts: timeouts, security: security, tls: tls)
        do {
            let action = try await connection.nextReplyAction()
            switch try await connection.perform(action, content: nil) {
            case .ready:
                return connection
            case .hostFailed(let reply):
                let isRemoteReply = !connection.session.isHostFailureLocal
                await connection.quit()
                throw HostFailure(reply, isRemoteReply: isRemoteReply)
            default:
                await connection.close()
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 0), "\(relay): unexpected state after greeting"))
            }
        } catch let failure as HostFailure {
            await connection.close()
            throw failure
        }
    }

    /// Runs one transaction. Returns each recipient's outcome, or throws ``HostFailure``.
    func send(_ transaction: OutboundTransaction, content: StoredContent) async throws -> [RecipientOutcome] {
        precondition(session.isReady)
        transactionCount += 1
        do {
            switch try await perform(session.start(transaction), content: content, size: transaction.size) {
            case .finished(let outcomes):
                return outcomes
            case .hostFailed(let reply):
                let isRemoteReply = !session.isHostFailureLocal
                await quit()
                throw HostFailure(reply, isRemoteReply: isRemoteReply)
            default:
                isBroken = true
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 0), "\(relay): protocol error"))
            }
        } catch var failure as HostFailure {
            isBroken = true
            failure.isStaleConnection = failure.isStaleConnection && transactionCount > 1
            throw failure
        }
    }

    /// Sends QUIT, waits briefly for its reply, and closes.
    func quit() async {
        if !isBroken, case .send(let text) = session.quit() {
            setTimeout(.seconds(5))
            try? await outbound.write(ByteBuffer(string: text))
            _ = try? await readReply()
        }
        await close()
    }

    /// While parked in the cache, nothing is awaited: the read timer is pushed out of the way.
    func suspendReadTimeout(for duration: Duration) {
        setTimeout(duration)
    }

    deinit {
        // A connection dropped on an error path still finishes its writer (NIO requires it).
        outbound.finish()
    }

    func close() async {
        isBroken = true
        session.connectionLost()
        outbound.finish()
        try? await channel.channel.close()
    }

    // MARK: - The conversation

    /// Performs actions until the session needs the caller: ready, finished, failed or closed.
    private func perform(_ first: ClientSession.Action, content: StoredContent?, size: Int = 0) async throws -> ClientSession.Action {
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
    private func handshake() async throws {
        guard let tls else {
            throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "\(relay): STARTTLS without a TLS context"), isTLSFailure: true)
        }
        let gate = self.gate
        let hostName = self.hostName
        do {
            try await channel.channel.eventLoop.submit {
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
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 7, 0), "\(relay): TLS handshake failed: \(Self.describe(error))"), isTLSFailure: true)
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

    private func nextReplyAction() async throws -> ClientSession.Action {
        switch session.wait {
        case .greeting, .command: setTimeout(timeouts.command)
        case .dataInitiation: setTimeout(timeouts.dataInitiation)
        case .dataTermination: setTimeout(timeouts.dataTermination)
        }
        return session.receive(try await readReply())
    }

    private func readReply() async throws -> SMTPReply {
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
                throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 2), "\(relay): connection lost: \(Self.describe(error))"), isStaleConnection: true)
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
            throw HostFailure(SMTPReply(451, EnhancedStatusCode(4, 4, 2), "\(relay): connection lost while sending: \(Self.describe(error))"), isStaleConnection: true)
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
                try await spoolReader.forEachChunk(path: path, expectedSize: size - traceHeaders.readableBytes) { chunk in
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
    private func setTimeout(_ duration: Duration) {
        guard duration != currentTimeout else { return }
        currentTimeout = duration
        let gate = self.gate
        channel.channel.eventLoop.execute { gate.value.setTimeout(TimeAmount(duration)) }
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error)
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        if error is ChannelError { return "\(error)" }
        return "\(error)"
    }
}
