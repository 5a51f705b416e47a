import ArgumentParser
import DNSResolver
import Delivery
import InboundServer
import Logging
import MailQueue
import ServiceLifecycle

/// `petrel serve`: the relay, its services in one `ServiceGroup`.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the relay.")

    @OptionGroup var options: ConfigOption

    static let shutdownBound: Duration = .seconds(30)

    func run() async throws {
        let logger = Bootstrap.makeLogger()
        let configuration = try Bootstrap.loadConfiguration(options)
        let store = try Bootstrap.openQueue(configuration)
        let orphans = try store.removeOrphanedSpoolFiles()
        if orphans > 0 {
            logger.notice("removed \(orphans) spool files of messages that were never acknowledged")
        }
        let resolver: SystemResolver
        do {
            resolver = try SystemResolver(servers: configuration.delivery.dnsServers)
        } catch {
            Bootstrap.printError("configuration error: \(configuration.sourceFile ?? "(defaults)"): delivery.dns_servers: \(error)")
            throw ExitCode.failure
        }
        let scheduler = DeliveryScheduler(store: store, settings: DeliverySettings(configuration), resolver: resolver, logger: logger)
        let committer = GroupCommitter(store: store, logger: logger, onBatch: { _ in scheduler.wake() })
        let server = InboundServer(configuration: configuration, committer: committer, logger: logger)
        // Shutdown runs in reverse order: the listener stops first, then delivery finishes what is in
        // flight, then the committer writes what is left.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [
                .init(service: committer),
                .init(service: scheduler),
                .init(service: server),
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
        try await group.run()
        logger.info("petrel stopped")
    }
}
