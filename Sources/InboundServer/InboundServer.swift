import Authentication
import DNSResolver
import LogEvents
import Logging
import MailQueue
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PetrelConfig
import SMTPProtocol
import SMTPTransport
import ServiceLifecycle

/// The SMTP listener(s) as a `Service`: accepts connections, applies `client_networks` and the
/// connection limits, and runs a ``SessionDriver`` for each in a discarding task group.
///
/// Graceful shutdown closes the listeners first, then tells every session: one waiting for a command is
/// answered `421 4.3.2` at once, one in the middle of a message finishes it (and gets its `250` once the
/// message is durable) before it is told.
public final class InboundServer: Service, Sendable {
    private let settings: NIOLockedValueBox<InboundSettings>
    private let listenAddresses: [(ListenAddress, ListenerKind)]
    private let tlsContext: NIOLockedValueBox<NIOSSLContext?>
    private let authenticator: Authenticator?
    private let clientNames: (any ClientNameResolving)?
    private let committer: GroupCommitter
    private let logger: Logger
    private let group: any EventLoopGroup
    private let limiter: ConnectionLimiter
    private let sessions = NIOLockedValueBox(SessionRegistry())
    private let listeningPromise: EventLoopPromise<[SocketAddress]>

    private struct SessionRegistry {
        var nextID = 0
        var shutdownNotices: [Int: @Sendable () -> Void] = [:]
        var isShuttingDown = false
    }

    /// - Parameters:
    ///   - tlsContext: the server TLS context when a certificate is configured (``makeTLSContext(_:)``).
    ///   - authenticator: the SMTP AUTH users, when there is a users file.
    ///   - clientNames: looks up each client's forward-confirmed name for the log and the `Received:` field;
    ///     without it every client is `unknown`.
    public init(configuration: PetrelConfiguration, committer: GroupCommitter, logger: Logger,
                tlsContext: NIOSSLContext? = nil, authenticator: Authenticator? = nil,
                clientNames: (any ClientNameResolving)? = nil,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        let settings = InboundSettings(configuration)
        self.settings = NIOLockedValueBox(settings)
        self.listenAddresses = configuration.inbound.listen.map { ($0, .relay) }
            + configuration.inbound.submissionListen.map { ($0, .submission) }
            + configuration.inbound.submissionsListen.map { ($0, .submissions) }
        self.tlsContext = NIOLockedValueBox(tlsContext)
        self.authenticator = authenticator
        self.clientNames = clientNames
        self.committer = committer
        self.logger = logger
        self.group = group
        self.limiter = ConnectionLimiter(maximumConnections: settings.maxConnections,
                                         maximumPerClient: settings.maxConnectionsPerClient)
        self.listeningPromise = group.next().makePromise()
    }

    /// The addresses the listeners are bound to, once they are (port 0 becomes a real port).
    public func listeningAddresses() async throws -> [SocketAddress] {
        try await listeningPromise.futureResult.get()
    }

    /// Loads the certificate chain and key for TLS 1.2 and 1.3 (RFC 8996 retires the older versions).
    public static func makeTLSContext(_ configuration: PetrelConfiguration) throws -> NIOSSLContext? {
        guard let certificate = configuration.tls.certificate, let key = configuration.tls.key else { return nil }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        )
        tls.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: tls)
    }

    /// Applies a new TLS context to the connections that open from now on (a reload).
    public func update(tlsContext: NIOSSLContext?) {
        self.tlsContext.withLockedValue { $0 = tlsContext }
    }

    /// Applies a new configuration to the connections that open from now on.
    public func update(configuration: PetrelConfiguration) {
        let new = InboundSettings(configuration)
        settings.withLockedValue { $0 = new }
        limiter.updateLimits(maximumConnections: new.maxConnections, maximumPerClient: new.maxConnectionsPerClient)
    }

    public func run() async throws {
        let listeners: [NIOAsyncChannel<AcceptedConnection, Never>]
        do {
            listeners = try await bindListeners()
        } catch {
            listeningPromise.fail(error)
            throw error
        }
        let addresses = listeners.compactMap { $0.channel.localAddress }
        listeningPromise.succeed(addresses)
        logger.info("listening", metadata: ["addresses": "\(addresses.map { "\($0)" }.joined(separator: " "))"])

        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for listener in listeners {
                    group.addTask {
                        try await listener.executeThenClose { inbound in
                            try await withThrowingDiscardingTaskGroup { connections in
                                for try await connection in inbound {
                                    connections.addTask { await self.serve(connection) }
                                }
                            }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            for listener in listeners { listener.channel.close(promise: nil) }
            let notices = self.sessions.withLockedValue { registry in
                registry.isShuttingDown = true
                return Array(registry.shutdownNotices.values)
            }
            for notice in notices { notice() }
        }
        logger.info("inbound server stopped")
    }

    private func bindListeners() async throws -> [NIOAsyncChannel<AcceptedConnection, Never>] {
        var listeners: [NIOAsyncChannel<AcceptedConnection, Never>] = []
        let commandTimeout = settings.withLockedValue { $0.commandTimeout }
        let tlsContext = self.tlsContext
        for (address, kind) in listenAddresses {
            if kind == .submissions && tlsContext.withLockedValue({ $0 }) == nil {
                throw ListenError(address: address, key: kind.configurationKey, reason: "needs [tls] certificate and key")
            }
            let listener = try await ListenError.naming(address, kind.configurationKey) {
                try await ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 1024)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                    // Commands are short: reads start at 1 KiB (NIO's default is 2 KiB, kept per connection) and
                    // grow by themselves when DATA fills them.
                    .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536))
                    .bind(host: address.host, port: address.port) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let gate = ConnectionGate(timeout: TimeAmount(commandTimeout))
                            let context = tlsContext.withLockedValue { $0 }
                            if kind == .submissions, let context {
                                // RFC 8314 §3: TLS from the first byte.
                                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                            }
                            try channel.pipeline.syncOperations.addHandler(gate)
                            let asyncChannel = try NIOAsyncChannel<ConnectionEvent, ByteBuffer>(
                                wrappingChannelSynchronously: channel,
                                configuration: .init(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8))
                            )
                            return AcceptedConnection(channel: asyncChannel, gate: NIOLoopBound(gate, eventLoop: channel.eventLoop),
                                                      listener: kind, tlsContext: context)
                        }
                    }
            }
            listeners.append(listener)
        }
        return listeners
    }

    /// One connection, from admission to close.
    private func serve(_ connection: AcceptedConnection) async {
        let settings = self.settings.withLockedValue { $0 }
        guard let remote = connection.channel.channel.remoteAddress?.ipAddress, let client = IPAddress(remote) else {
            try? await connection.channel.executeThenClose { _, _ in }
            return
        }
        guard connection.listener != .relay || settings.admitsClient(client) else {
            logger.log(.info, .session(SessionEvent(client: "\(client)", .refusedByClientNetworks)))
            InboundMetrics.connectionRefused("client_networks")
            await refuse(connection, SMTPReply(421, EnhancedStatusCode(4, 7, 0), "\(settings.session.hostname) Service not available"))
            return
        }
        switch limiter.admit(client) {
        case .admitted:
            break
        case .tooManyConnections, .tooManyFromClient:
            logger.log(.warning, .session(SessionEvent(client: "\(client)", .refusedTooManyConnections)))
            InboundMetrics.connectionRefused("limit")
            await refuse(connection, SMTPReply(421, EnhancedStatusCode(4, 7, 0), "\(settings.session.hostname) Error: too many connections"))
            return
        }
        defer { limiter.release(client) }
        InboundMetrics.connectionOpened(connection.listener)
        defer { InboundMetrics.connectionClosed(connection.listener) }

        let gate = connection.gate
        let eventLoop = connection.channel.channel.eventLoop
        let notice: @Sendable () -> Void = { eventLoop.execute { gate.value.requestShutdown() } }
        let (id, isShuttingDown) = sessions.withLockedValue { registry in
            registry.nextID += 1
            registry.shutdownNotices[registry.nextID] = notice
            return (registry.nextID, registry.isShuttingDown)
        }
        defer { _ = sessions.withLockedValue { $0.shutdownNotices.removeValue(forKey: id) } }
        if isShuttingDown { notice() }

        let clientName = ClientName()
        let driver = SessionDriver(connection: connection, client: client, clientName: clientName, settings: settings,
                                   listener: connection.listener, committer: committer, authenticator: authenticator,
                                   tlsContext: connection.tlsContext, logger: logger)
        await withDiscardingTaskGroup { lookups in
            // The client's name is looked up beside the session, which never waits for it; the lookup ends with it.
            if let clientNames {
                lookups.addTask { await clientName.look(up: client.description, with: clientNames) }
            }
            do {
                try await driver.run()
            } catch {
                logger.debug("session ended with an error", metadata: ["client": "\(client)", "error": "\(error)"])
            }
            lookups.cancelAll()
        }
    }

    private func refuse(_ connection: AcceptedConnection, _ reply: SMTPReply) async {
        var buffer = connection.channel.channel.allocator.buffer(capacity: 128)
        reply.write(to: &buffer)
        try? await connection.channel.executeThenClose { _, outbound in
            try await outbound.write(buffer)
        }
    }
}

extension ListenerKind {
    /// The configuration key of this kind of listener, for messages.
    var configurationKey: String {
        switch self {
        case .relay: "inbound.listen"
        case .submission: "inbound.submission_listen"
        case .submissions: "inbound.submissions_listen"
        }
    }
}

extension ListenError {
    /// Runs `bind`, and says which address and key a failure is about.
    public static func naming<T>(_ address: ListenAddress, _ key: String, _ bind: () async throws -> T) async throws -> T {
        do {
            return try await bind()
        } catch let error as IOError {
            throw ListenError(address: address, key: key, errno: error.errnoCode)
        } catch {
            throw ListenError(address: address, key: key, reason: "\(error)")
        }
    }
}
