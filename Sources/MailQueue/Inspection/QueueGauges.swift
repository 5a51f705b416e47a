import Foundation
import GRDB
import Logging
import Metrics
import ServiceLifecycle

/// Publishes the queue's depth as gauges, refreshed every `interval`: recipients by state, messages,
/// held messages, the oldest message's age, and the bytes queued.
///
/// Counting reads the whole queue, so a deep queue is counted less often: the pause after a refresh is
/// at least 100 times what the refresh took, which keeps the gauges under 1 % of one core at any depth.
public struct QueueGauges: Service {
    public let store: QueueStore
    public let interval: Duration
    let logger: Logger

    public init(store: QueueStore, interval: Duration = .seconds(10), logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let started = ContinuousClock.now
                do {
                    try await refresh()
                } catch where Task.isCancelled {
                    // Shutdown stopped the read: nothing is wrong.
                } catch {
                    logger.warning("cannot read queue depth for metrics", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: max(interval, (ContinuousClock.now - started) * 100))
            }
        }
    }

    func refresh() async throws {
        let (states, messages, held, oldest, bytes) = try await store.pool.read { db in
            let states = try Row.fetchAll(db, sql: "SELECT state, count(*) AS n FROM recipient GROUP BY state")
                .map { ($0["state"] as String, $0["n"] as Int) }
            let summary = try Row.fetchOne(db, sql: "SELECT count(*) AS n, sum(is_held) AS held, min(arrived_at) AS oldest, sum(size) AS bytes FROM message")
            return (states, summary?["n"] as Int? ?? 0, summary?["held"] as Int? ?? 0, summary?["oldest"] as Int64?, summary?["bytes"] as Int? ?? 0)
        }
        let counts = Dictionary(uniqueKeysWithValues: states)
        for state in ["queued", "deferred", "delivered", "failed"] {
            Gauge(label: "petrel_queue_recipients", dimensions: [("state", state)]).record(counts[state] ?? 0)
        }
        Gauge(label: "petrel_queue_messages").record(messages)
        Gauge(label: "petrel_queue_held_messages").record(held)
        Gauge(label: "petrel_queue_bytes").record(bytes)
        let age = oldest.map { Date().timeIntervalSince(Date(unixMilliseconds: $0)) } ?? 0
        Gauge(label: "petrel_queue_oldest_message_age_seconds").record(max(0, age))
    }
}
