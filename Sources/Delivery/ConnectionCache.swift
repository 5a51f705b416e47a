import Foundation

/// Connections that ended a transaction well, kept for the next message to the same next hop (RFC 5321
/// §3.3 allows many transactions per session). Bounded by idle time and by transactions per connection.
///
/// The cache holds handles only: each connection's conversation runs in its own task in
/// ``ConnectionTasks``, so closing one here (``OutboundConnection/close()``, ``OutboundConnection/quit()``)
/// only tells that task to end, and the delivery engine waits for it.
actor ConnectionCache {
    private struct Idle {
        var connection: OutboundConnection
        var since: ContinuousClock.Instant
    }

    let maximumIdleTime: Duration
    let maximumTransactions: Int
    let maximumIdlePerDestination: Int
    private var idle: [String: [Idle]] = [:]

    init(maximumIdleTime: Duration = .seconds(10), maximumTransactions: Int = 100, maximumIdlePerDestination: Int = 32) {
        self.maximumIdleTime = maximumIdleTime
        self.maximumTransactions = maximumTransactions
        self.maximumIdlePerDestination = maximumIdlePerDestination
    }

    /// An idle connection to `key` (`ip:port`), if one is fresh.
    func take(_ key: String) -> OutboundConnection? {
        let now = ContinuousClock.now
        while var list = idle[key], let entry = list.popLast() {
            idle[key] = list.isEmpty ? nil : list
            if now - entry.since < maximumIdleTime && entry.connection.isReusable {
                return entry.connection
            }
            entry.connection.close()
        }
        return nil
    }

    /// Keeps a connection for reuse, or closes it when it has done enough.
    func park(_ connection: OutboundConnection) {
        guard connection.isReusable, connection.transactionCount < maximumTransactions,
              idle[connection.key, default: []].count < maximumIdlePerDestination else {
            connection.quit()
            return
        }
        idle[connection.key, default: []].append(Idle(connection: connection, since: .now))
    }

    /// Closes connections idle for too long.
    func sweep() {
        let now = ContinuousClock.now
        var expired: [OutboundConnection] = []
        for (key, list) in idle {
            let (keep, drop) = (list.filter { now - $0.since < maximumIdleTime }, list.filter { now - $0.since >= maximumIdleTime })
            idle[key] = keep.isEmpty ? nil : keep
            expired += drop.map(\.connection)
        }
        for connection in expired { connection.quit() }
    }

    func closeAll() {
        let all = idle.values.flatMap { $0.map(\.connection) }
        idle.removeAll()
        for connection in all { connection.quit() }
    }

    /// The read timeout of a connection between transactions: no reply is awaited while it is parked, and
    /// the timeout must not fire and leave a stale event before the cache closes it.
    nonisolated var idleReadTimeout: Duration { maximumIdleTime + .seconds(60) }
}
