import CResolv
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PetrelConfig

/// A ``DNSResolving`` on glibc's stub resolver (libresolv), with a cache.
///
/// Each lookup sends one query of one type with res_nquery(3), on a private resolver state so lookups can
/// run in parallel, and reads the answer with ns_initparse(3)/ns_parserr(3). The blocking call runs on a
/// `NIOThreadPool`, never on an event loop or on Swift's cooperative pool.
///
/// Answers are classified for mail delivery:
/// - records → `.found`, cached for the smallest TTL of the RRset (RFC 1035 §3.2.1, RFC 2181 §5.2);
/// - NXDOMAIN → `.nonexistentDomain` and NODATA → `.noRecords`, both permanent, cached for
///   `negativeTTL` (RFC 2308 §5; res_nquery does not return these responses, so the SOA minimum of
///   their authority section is not available and a fixed, short time is used instead);
/// - SERVFAIL, REFUSED, timeouts and garbled answers → thrown ``DNSError``, never cached.
///
/// The name servers are those of /etc/resolv.conf unless `servers` is given. Names are taken as fully
/// qualified: no search list applies.
///
/// A cancelled lookup returns at once with `CancellationError`; a query already sent runs to its end on its
/// thread, and its answer is still cached. A lookup cancelled before its query started never sends it.
public final class SystemResolver: DNSResolving {
    /// A name server string that `HostPort(nameServer:)` rejects, or more servers than libresolv uses.
    public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// At most this many name servers are used, as libresolv tracks no more (`MAXNS`).
    public static let maximumServers = Int(MAXNS)

    private let configuration: ResolverConfiguration
    private let cache: DNSCache
    private let negativeTTL: Duration
    private let threadPool: NIOThreadPool
    private let now: @Sendable () -> ContinuousClock.Instant
    /// Reverse lookups that failed for a moment (no server answered, SERVFAIL), and until when that answer
    /// stands. RFC 2308 §7.1 lets a resolver keep a server failure for up to five minutes: without it, a
    /// DNS outage, or a relay with no reachable DNS server, would send one query per client connection.
    /// Only PTR lookups are kept so, since they only name clients: delivery's lookups always ask again.
    private let recentReverseFailures = NIOLockedValueBox<[String: (error: DNSError, until: ContinuousClock.Instant)]>([:])
    /// How long a failed reverse lookup stands.
    public static let reverseFailureTTL: Duration = .seconds(30)
    /// The most failed reverse lookups remembered; beyond it the memory starts afresh.
    static let maximumReverseFailures = 10_000

    /// - Parameters:
    ///   - servers: name servers as "ip", "ip:port" or "[ipv6]:port" (see `PetrelConfiguration.HostPort(nameServer:)`), at most
    ///     ``maximumServers``, tried in order; empty uses those of /etc/resolv.conf.
    ///   - timeout: how long to wait for the first answer from a server, in whole seconds (rounded up,
    ///     at least one); the resolver doubles it on each further attempt.
    ///   - attempts: how many times each server is asked (at least once).
    ///   - cacheCapacity: the most answers cached; 0 disables the cache.
    ///   - negativeTTL: how long NXDOMAIN and NODATA answers are cached (RFC 2308 §5).
    ///   - threadPool: where the blocking lookups run.
    ///   - now: the cache's clock; tests pass a manual one.
    /// - Throws: ``ConfigurationError`` for an unparsable server or too many servers.
    public init(
        servers: [String] = [],
        timeout: Duration = .seconds(5),
        attempts: Int = 2,
        cacheCapacity: Int = 10_000,
        negativeTTL: Duration = .seconds(60),
        threadPool: NIOThreadPool = .singleton,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) throws {
        guard servers.count <= Self.maximumServers else {
            throw ConfigurationError(
                description: "at most \(Self.maximumServers) DNS servers can be used, not \(servers.count)"
            )
        }
        let parsed = try servers.map { text in
            guard let server = PetrelConfiguration.HostPort(nameServer: text) else {
                throw ConfigurationError(description: "not a DNS server address (ip, ip:port or [ipv6]:port): \(text)")
            }
            return (host: server.host, port: server.port)
        }
        let (seconds, attoseconds) = timeout.components
        let wholeSeconds = seconds + (attoseconds > 0 ? 1 : 0)
        self.configuration = ResolverConfiguration(
            servers: parsed,
            timeoutSeconds: Int32(clamping: max(1, wholeSeconds)),
            attempts: Int32(clamping: max(1, attempts))
        )
        self.cache = DNSCache(capacity: cacheCapacity, now: now)
        self.negativeTTL = negativeTTL
        self.threadPool = threadPool
        self.now = now
    }

    public func mailExchangers(for domain: String) async throws -> DNSResult<[MXRecord]> {
        switch try await self.lookup(domain, .mx) {
        case .mailExchangers(let records): .found(records)
        case .addresses, .names: preconditionFailure("an MX lookup gave addresses or names")
        case .noRecords: .noRecords
        case .nonexistentDomain: .nonexistentDomain
        }
    }

    public func addresses(of host: String) async throws -> DNSResult<[String]> {
        async let ipv6 = self.outcome(host, .aaaa)
        async let ipv4 = self.outcome(host, .a)
        let outcomes = await [ipv6, ipv4]

        var found: [String] = []
        var sawNoRecords = false
        var errors: [DNSError] = []
        for outcome in outcomes {
            switch outcome {
            case .success(.addresses(let addresses)):
                found += addresses
            case .success(.nonexistentDomain):
                return .nonexistentDomain
            case .success(.noRecords), .success(.mailExchangers), .success(.names):
                sawNoRecords = true
            case .failure(let error as DNSError):
                errors.append(error)
            case .failure(let error):
                throw error
            }
        }
        if !found.isEmpty {
            return .found(found)
        }
        if errors.isEmpty, sawNoRecords {
            return .noRecords
        }
        // Neither type has addresses and one of them is unknown: nothing definite to say yet.
        if errors.count == 1 {
            throw errors[0]
        }
        throw DNSError(domain: host, type: "A/AAAA", reason: errors.map(\.reason).joined(separator: "; "))
    }

    private func outcome(_ name: String, _ type: RecordType) async -> Result<Answer, Error> {
        do {
            return .success(try await self.lookup(name, type))
        } catch {
            return .failure(error)
        }
    }

    /// One lookup through the cache.
    func lookup(_ name: String, _ type: RecordType) async throws -> Answer {
        guard let normalized = normalizedDomainName(name) else {
            // Not a possible domain name (RFC 1035 §2.3.4): it cannot exist, now or later.
            return .nonexistentDomain
        }
        let key = DNSCache.Key(name: normalized, type: type)
        if let cached = self.cache.answer(for: key) {
            return cached
        }
        guard type == .ptr else { return try await query(normalized, type, key: key) }
        let now = self.now()
        if let failure = recentReverseFailures.withLockedValue({ $0[normalized] }), failure.until > now {
            throw failure.error
        }
        do {
            return try await query(normalized, type, key: key)
        } catch let error as DNSError {
            recentReverseFailures.withLockedValue { failures in
                if failures.count >= Self.maximumReverseFailures { failures.removeAll(keepingCapacity: true) }
                failures[normalized] = (error, now.advanced(by: Self.reverseFailureTTL))
            }
            throw error
        }
    }

    /// Asks the name servers, on the thread pool, and caches the answer.
    private func query(_ normalized: String, _ type: RecordType, key: DNSCache.Key) async throws -> Answer {
        let configuration = self.configuration
        let cache = self.cache
        let negativeTTL = self.negativeTTL
        let waiter = LookupWaiter()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Answer, any Error>) in
                guard waiter.wait(with: continuation) else { return }
                self.threadPool.submit { state in
                    guard case .active = state else {
                        waiter.finish(.failure(DNSError(domain: normalized, type: type.description,
                                                        reason: "lookup not run: the resolver's thread pool is stopped")))
                        return
                    }
                    // The caller may have stopped waiting while this lookup sat in the pool's queue.
                    guard waiter.isWaiting else { return }
                    let result = Result { try blockingQuery(name: normalized, type: type, configuration: configuration) }
                    if case .success(let answer) = result {
                        cache.store(answer.answer, for: key, timeToLive: answer.timeToLive ?? negativeTTL)
                    }
                    waiter.finish(result.map(\.answer))
                }
            }
        } onCancel: {
            waiter.finish(.failure(CancellationError()))
        }
    }
}

/// `name` lowercased and without its trailing dot, or `nil` when it cannot be a domain name: empty, an
/// empty label, a label over 63 octets, or over 253 octets in all (RFC 1035 §2.3.4).
func normalizedDomainName(_ name: String) -> String? {
    var name = name.lowercased()
    if name.hasSuffix(".") {
        name.removeLast()
    }
    guard !name.isEmpty, name.utf8.count <= 253 else { return nil }
    for label in name.split(separator: ".", omittingEmptySubsequences: false) {
        guard (1...63).contains(label.utf8.count) else { return nil }
    }
    return name
}

/// The one continuation of a lookup, resumed by whichever comes first: the answer, or the caller's cancellation.
private final class LookupWaiter: Sendable {
    private enum State {
        case idle
        case waiting(CheckedContinuation<Answer, any Error>)
        case finished
    }

    private let state = NIOLockedValueBox(State.idle)

    /// Holds `continuation` until ``finish(_:)``; `false` (and the continuation resumed) when the lookup was
    /// already cancelled.
    func wait(with continuation: CheckedContinuation<Answer, any Error>) -> Bool {
        let isCancelled = state.withLockedValue { state -> Bool in
            guard case .idle = state else { return true }
            state = .waiting(continuation)
            return false
        }
        if isCancelled { continuation.resume(throwing: CancellationError()) }
        return !isCancelled
    }

    var isWaiting: Bool {
        state.withLockedValue { if case .waiting = $0 { true } else { false } }
    }

    /// Resumes the caller with `result`, unless it was resumed already.
    func finish(_ result: Result<Answer, any Error>) {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Answer, any Error>? in
            defer { state = .finished }
            if case .waiting(let continuation) = state { return continuation }
            return nil
        }
        continuation?.resume(with: result)
    }
}
