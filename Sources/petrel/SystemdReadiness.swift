import InboundServer
import Logging
import ServiceLifecycle

/// The relay's life as systemd sees it (`Type=notify`): `READY=1` once the listeners are bound (the queue
/// is open before the group starts), `STOPPING=1` as soon as shutdown begins.
///
/// It is the last service of the group, so graceful shutdown reaches it first: `STOPPING=1` goes out
/// before the listener closes.
struct SystemdReadiness: Service {
    let notifier: SystemdNotifier
    let server: InboundServer
    let logger: Logger

    func run() async throws {
        guard notifier.isEnabled else {
            try? await gracefulShutdown()
            return
        }
        do {
            let addresses = try await server.listeningAddresses()
            let listening = addresses.map { address in
                guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
                return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
            }.joined(separator: " ")
            if !notifier.notifyReady(status: "accepting mail on \(listening)") {
                logger.warning("cannot tell systemd that the relay is ready", metadata: ["notify_socket": "\(notifier.socketName ?? "")"])
            }
        } catch {
            // The listener could not bind; the server reports it and the group stops.
            notifier.notifyStatus("failed to listen: \(error)")
        }
        try? await gracefulShutdown()
        notifier.notifyStopping()
    }
}
