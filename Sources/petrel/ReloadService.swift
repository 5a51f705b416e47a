import Authentication
import Delivery
import InboundServer
import Logging
import PetrelConfig
import ServiceLifecycle
import UnixSignals

/// SIGHUP: reads the configuration file again and applies it without dropping a connection or a
/// message in flight — access lists and limits, routes and smarthost, TLS certificates, users. Sessions
/// already open keep the rules they started with. A configuration that does not load is refused, logged,
/// and the running one stays.
struct ReloadService: Service {
    let configurationFile: String?
    let server: InboundServer
    let scheduler: DeliveryScheduler
    let authenticator: Authenticator
    let systemd: SystemdNotifier
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                reload()
            }
        }
    }

    func reload() {
        systemd.notifyReloading()
        defer { systemd.notifyReady(status: "running") }
        let file = configurationFile ?? "(defaults)"
        do {
            let configuration = try PetrelConfiguration.load(file: configurationFile)
            let tlsContext = try InboundServer.makeTLSContext(configuration)
            let users = try UsersFile.load(path: configuration.auth.usersFile)
            var delivery = DeliverySettings(configuration)
            try delivery.loadSmarthostCredentials(configuration)
            try delivery.loadTLS(configuration)
            Bootstrap.applyLogSettings(configuration)
            server.update(configuration: configuration)
            server.update(tlsContext: tlsContext)
            authenticator.update(users: users)
            scheduler.update(settings: delivery)
            logger.notice("configuration reloaded", metadata: ["config": "\(file)", "users": "\(users.users.count)"])
        } catch {
            logger.error("configuration reload refused; the running configuration stays", metadata: ["config": "\(file)", "error": "\(error)"])
        }
    }
}
