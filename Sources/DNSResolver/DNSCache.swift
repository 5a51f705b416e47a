import NIOConcurrencyHelpers

/// The record types this module asks for.
enum RecordType: Sendable, Hashable, CustomStringConvertible {
    case mx
    case a
    case aaaa
    case ptr

    var description: String {
        switch self {
        case .mx: "MX"
        case .a: "A"
        case .aaaa: "AAAA"
        case .ptr: "PTR"
        }
    }
}

/// A lookup's definite answer, as cached.
enum Answer: Sendable, Equatable {
    case mailExchangers([MXRecord])
    case addresses([String])
    /// PTR targets (RFC 1035 §3.3.12), lowercased, without the trailing dot.
    case names([String])
    /// NODATA (RFC 2308 §2.2).
    case noRecords
    /// NXDOMAIN (RFC 2308 §2.1).
    case nonexistentDomain
}

/// A bounded, thread-safe cache of DNS answers, each kept for its time to live (RFC 1035 §3.2.1 for
/// records; RFC 2308 §5 for negative answers). Temporary failures are never given to it (RFC 2308 §7
/// allows caching them only briefly; this relay simply asks again).
///
/// Time comes from an injected clock so that tests can expire entries without sleeping.
final class DNSCache: Sendable {
    struct Key: Hashable, Sendable {
        /// Lowercased, without the trailing dot.
        var name: String
        var type: RecordType
    }

    private struct Entry: Sendable {
        var answer: Answer
        var expires: ContinuousClock.Instant
    }

    /// The most entries kept; 0 disables the cache.
    let capacity: Int
    private let now: @Sendable () -> ContinuousClock.Instant
    private let entries = NIOLockedValueBox<[Key: Entry]>([:])

    init(capacity: Int, now: @escaping @Sendable () -> ContinuousClock.Instant) {
        self.capacity = max(0, capacity)
        self.now = now
    }

    /// The answer cached for `key`, unless it has expired (an expired entry is dropped).
    func answer(for key: Key) -> Answer? {
        let now = self.now()
        return self.entries.withLockedValue { entries in
            guard let entry = entries[key] else { return nil }
            guard now < entry.expires else {
                entries[key] = nil
                return nil
            }
            return entry.answer
        }
    }

    /// Keeps `answer` for `timeToLive`; an answer whose time to live is not positive is not kept
    /// (RFC 1035 §3.2.1: a TTL of zero means "use only for the transaction in progress").
    ///
    /// When the cache is full, expired entries go first, then those closest to expiring, a tenth of the
    /// capacity at a time so that a full cache does not rescan on every insertion.
    func store(_ answer: Answer, for key: Key, timeToLive: Duration) {
        guard self.capacity > 0, timeToLive > .zero else { return }
        let now = self.now()
        let entry = Entry(answer: answer, expires: now + timeToLive)
        let capacity = self.capacity
        self.entries.withLockedValue { entries in
            if entries[key] == nil, entries.count >= capacity {
                entries = entries.filter { now < $0.value.expires }
                if entries.count >= capacity {
                    let excess = entries.count - capacity + max(1, capacity / 10)
                    let soonest = entries.sorted { $0.value.expires < $1.value.expires }.prefix(excess)
                    for (evicted, _) in soonest {
                        entries[evicted] = nil
                    }
                }
            }
            entries[key] = entry
        }
    }

    /// How many entries are held, expired or not.
    var count: Int {
        self.entries.withLockedValue { $0.count }
    }
}
