import ArgumentParser
import InboundServer
import Logging
import MailQueue
import ServiceLifecycle

/// `petrel serve`: the relay, its services in one `ServiceGroup`.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the relay.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let logger = Bootstrap.makeLogger()
        let configuration = try Bootstrap.loadConfiguration(options)
        let store = try Bootstrap.openQueue(configuration)
        let orphans = try store.removeOrphanedSpoolFiles()
        if orphans > 0 {
            logger.notice("removed \(orphans) spool files of messages that were never acknowledged")
        }
        let committer = GroupCommitter(store: store, logger: logger)
        let server = InboundServer(configuration: configuration, committer: committer, logger: logger)
        // Shutdown runs in reverse order: the listener stops first, the committer writes what is left.
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: committer),
                .init(service: server),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        logger.info("petrel starting", metadata: [
            "hostname": "\(configuration.hostname)",
            "config": "\(configuration.sourceFile ?? "(defaults)")",
            "queue": "\(configuration.queue.path)",
        ])
        try await group.run()
        logger.info("petrel stopped")
    }
}
