import ArgumentParser
import Authentication
import DNSResolver
import Delivery
import InboundServer
import Logging
import MailQueue
import Metrics
import NIOPosix
import NIOSSL
import Prometheus
import PetrelConfig
import ServiceLifecycle

/// `petrel serve`: the relay, its services in one `ServiceGroup`.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the relay.")

    @OptionGroup var options: ConfigOption

    static let shutdownBound: Duration = .seconds(30)

    func run() async throws {
        let logger = Bootstrap.makeLogger()
        Bootstrap.ignoreHangUpUntilReloadIsReady()
        let configuration = try Bootstrap.loadConfiguration(options)
        Bootstrap.applyLogSettings(configuration)
        let systemd = SystemdNotifier()
        let store = try Bootstrap.openQueue(configuration)
        let orphans = try store.removeOrphanedSpoolFiles()
        if orphans > 0 {
            logger.notice("removed \(orphans) spool files of messages that were never acknowledged")
        }
        let registry = PrometheusCollectorRegistry()
        var metricsFactory = PrometheusMetricsFactory(registry: registry)
        metricsFactory.valueHistogramBuckets["petrel_group_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        MetricsSystem.bootstrap(metricsFactory)
        // Blocking DNS lookups get their own threads, so a dead name server cannot starve the spool I/O.
        let dnsThreads = NIOThreadPool(numberOfThreads: 16)
        dnsThreads.start()
        // Clients' names (PTR, then A/AAAA) have threads of their own too: a flood of clients whose reverse
        // zones never answer must not hold up delivery's lookups.
        let clientNameThreads = NIOThreadPool(numberOfThreads: 4)
        clientNameThreads.start()
        let resolver: SystemResolver
        let clientNames: SystemResolver
        do {
            resolver = try SystemResolver(servers: configuration.delivery.dnsServers, threadPool: dnsThreads)
            clientNames = try SystemResolver(servers: configuration.delivery.dnsServers, threadPool: clientNameThreads)
        } catch {
            Bootstrap.printError("configuration error: \(configuration.sourceFile ?? "(defaults)"): delivery.dns_servers: \(error)")
            throw ExitCode.failure
        }
        var deliverySettings = DeliverySettings(configuration)
        let security = try Self.loadSecurity(configuration, delivery: &deliverySettings)
        let committer = GroupCommitter(store: store, logger: logger)
        let scheduler = DeliveryScheduler(store: store, committer: committer, settings: deliverySettings, resolver: resolver, logger: logger)
        let server = InboundServer(configuration: configuration, committer: committer, logger: logger,
                                   tlsContext: security.tlsContext, authenticator: security.authenticator, clientNames: clientNames)
        // Shutdown runs in reverse order: the listener stops first, then delivery finishes what is in
        // flight, then the committer writes what is left.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: committer),
            .init(service: QueueGauges(store: store, logger: logger)),
            .init(service: OperatorAuditLog(store: store, logger: logger)),
        ]
        if let address = configuration.metrics.listen {
            services.append(.init(service: MetricsServer(address: address, registry: registry, logger: logger)))
        }
        services.append(.init(service: ReloadService(configurationFile: configuration.sourceFile, server: server, scheduler: scheduler,
                                                     authenticator: security.authenticator, systemd: systemd, logger: logger)))
        var groupConfiguration = ServiceGroupConfiguration(
            services: services + [
                .init(service: scheduler),
                .init(service: server),
                // Last, so that shutdown reaches it first: STOPPING=1 before the listener closes.
                .init(service: SystemdReadiness(notifier: systemd, server: server, logger: logger)),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // A client stalled in the middle of a message must not hold the shutdown for data_timeout:
        // after this bound the sessions are cancelled (their messages were never acknowledged).
        groupConfiguration.maximumGracefulShutdownDuration = Self.shutdownBound
        let group = ServiceGroup(configuration: groupConfiguration)
        logger.info("petrel starting", metadata: [
            "hostname": "\(configuration.hostname)",
            "config": "\(configuration.sourceFile ?? "(defaults)")",
            "queue": "\(configuration.queue.path)",
        ])
        do {
            try await group.run()
        } catch let error as ListenError {
            Bootstrap.printError("\(error)")
            throw ExitCode.failure
        }
        logger.info("petrel stopped")
    }

    /// The TLS certificate, the AUTH users, the smarthost password and the client TLS contexts (with
    /// `delivery.tls_ca_file`): every file is read at start-up, and a problem names the key and the file.
    static func loadSecurity(
        _ configuration: PetrelConfiguration, delivery: inout DeliverySettings
    ) throws -> (tlsContext: NIOSSLContext?, authenticator: Authenticator) {
        let file = configuration.sourceFile ?? "(defaults)"
        let tlsContext: NIOSSLContext?
        do {
            tlsContext = try InboundServer.makeTLSContext(configuration)
        } catch {
            Bootstrap.printError("configuration error: \(file): tls.certificate: cannot load \(configuration.tls.certificate ?? "") and \(configuration.tls.key ?? ""): \(error)")
            throw ExitCode.failure
        }
        let users: UsersFile
        do {
            users = try UsersFile.load(path: configuration.auth.usersFile)
        } catch {
            Bootstrap.printError("configuration error: \(file): auth.users_file: \(error)")
            throw ExitCode.failure
        }
        do {
            try delivery.loadSmarthostCredentials(configuration)
            try delivery.loadTLS(configuration)
        } catch {
            Bootstrap.printError("configuration error: \(file): \(error)")
            throw ExitCode.failure
        }
        return (tlsContext, Authenticator(users: users))
    }
}
