import LogEvents
import Logging
import MailQueue
import ServiceLifecycle

/// Writes the operator's actions into the server's log, beside the delivery lines: the CLI runs in
/// another process and leaves an entry in the queue (`operator_audit`) for each message it acted on; this
/// service logs each once, every second, and a last time at shutdown.
///
///     2025-03-01T09:15:02.517Z notice petrel: [petrel] 65SHN2V1Q8K0TZ: removed by operator root (reason: spam run)
///
/// With `[log] format = "json"` the line also carries `action`, `operator`, `reason` and `recipients`.
struct OperatorAuditLog: Service {
    let store: QueueStore
    let logger: Logger
    var interval: Duration = .seconds(1)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await logWaitingEntries()
                try? await Task.sleep(for: interval)
            }
        }
        // What was done in the last interval.
        await logWaitingEntries()
    }

    private func logWaitingEntries() async {
        do {
            try await store.logOperatorAudit { entry in
                logger.log(.notice, .operatorAction(entry))
            }
        } catch where Task.isCancelled {
            // Shutdown: the entries stay for the last look, or the next start.
        } catch {
            logger.warning("cannot read the operator's actions from the queue; they are logged later", metadata: ["error": "\(error)"])
        }
    }
}
