import Metrics

/// The inbound server's metrics (names documented in deploy/README.md). The per-connection ones are made
/// once per listener kind (on first use, after the metrics system is bootstrapped), not per connection:
/// making a metric looks it up in the registry under a lock.
enum InboundMetrics {
    static func connectionOpened(_ listener: ListenerKind) {
        connections[listener]?.total.increment()
        connections[listener]?.current.increment()
    }

    static func connectionClosed(_ listener: ListenerKind) {
        connections[listener]?.current.decrement()
    }

    private static let connections = Dictionary(uniqueKeysWithValues: ListenerKind.allCases.map { listener in
        (listener, (total: Counter(label: "petrel_connections_total", dimensions: [("listener", listener.rawValue)]),
                    current: Meter(label: "petrel_connections_current", dimensions: [("listener", listener.rawValue)])))
    })

    /// A connection turned away at once: `client_networks`, or the connection limits.
    static func connectionRefused(_ reason: String) {
        Counter(label: "petrel_connections_refused_total", dimensions: [("reason", reason)]).increment()
    }

    static func messageAccepted(bytes: Int) {
        accepted.increment()
        acceptedBytes.increment(by: bytes)
    }

    /// A message refused after DATA, or a transaction command refused, by reply code.
    static func rejected(code: Int) {
        Counter(label: "petrel_messages_rejected_total", dimensions: [("code", String(code))]).increment()
    }

    static func authFailed() {
        authFailures.increment()
    }

    private static let accepted = Counter(label: "petrel_messages_accepted_total")
    private static let acceptedBytes = Counter(label: "petrel_accepted_bytes_total")
    private static let authFailures = Counter(label: "petrel_auth_failures_total")
}
