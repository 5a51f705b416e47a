import Metrics

/// The delivery engine's metrics (names documented in deploy/README.md).
enum DeliveryMetrics {
    /// One per recipient attempt: `sent`, `deferred`, `bounced` or `expired`.
    static func attempt(_ status: String) {
        (attempts[status] ?? Counter(label: "petrel_delivery_attempts_total", dimensions: [("result", status)])).increment()
    }

    /// Made once (on first use, after bootstrap): making a metric looks it up in the registry under a lock.
    private static let attempts = Dictionary(uniqueKeysWithValues: ["sent", "deferred", "bounced", "expired"].map {
        ($0, Counter(label: "petrel_delivery_attempts_total", dimensions: [("result", $0)]))
    })

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
