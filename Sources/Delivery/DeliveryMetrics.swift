import Metrics

/// The delivery engine's metrics (names documented in deploy/README.md).
enum DeliveryMetrics {
    /// One per recipient attempt: `sent`, `deferred`, `bounced` or `expired`.
    static func attempt(_ status: String) {
        Counter(label: "petrel_delivery_attempts_total", dimensions: [("result", status)]).increment()
    }

    /// The time one job (one transaction, all its hosts) took.
    static let duration = Timer(label: "petrel_delivery_duration_seconds")

    /// Notifications queued: `failure`, `delay` or `success` (relayed).
    static func notification(_ kind: String) {
        Counter(label: "petrel_bounces_total", dimensions: [("kind", kind)]).increment()
    }

    /// One DNS lookup, `mx` or `address`.
    static func dnsLookup(_ type: String, nanoseconds: Int64) {
        Timer(label: "petrel_dns_lookup_duration_seconds", dimensions: [("type", type)]).recordNanoseconds(nanoseconds)
    }
}
