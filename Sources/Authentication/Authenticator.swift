import NIOConcurrencyHelpers

/// Checks SMTP AUTH credentials against the users file, off the event loops and on threads of their own
/// (``PasswordHashPool``: a yescrypt hash costs milliseconds by design), and throttles addresses that
/// keep failing.
public final class Authenticator: Sendable {
    private let users: NIOLockedValueBox<UsersFile>
    private let throttle: NIOLockedValueBox<[String: FailureRecord]>
    private let hashPool: PasswordHashPool
    /// Failures from one address within `window` before its AUTH attempts are refused outright.
    public let maximumFailures: Int
    public let window: Duration
    /// A hash to check against when the user does not exist, so that the answer takes as long.
    private let decoyHash: String
    /// The injected clock's time, as the time since this throttle was made.
    private let now: @Sendable () -> Duration

    private struct FailureRecord {
        var count: Int
        var since: Duration
    }

    /// `clock` measures the window (tests pass one they move by hand).
    public init(
        users: UsersFile, maximumFailures: Int = 10, window: Duration = .seconds(600), hashPool: PasswordHashPool = .shared,
        clock: some Clock<Duration> = ContinuousClock()
    ) {
        let origin = clock.now
        self.now = { origin.duration(to: clock.now) }
        self.users = NIOLockedValueBox(users)
        self.throttle = NIOLockedValueBox([:])
        self.hashPool = hashPool
        self.maximumFailures = maximumFailures
        self.window = window
        self.decoyHash = (try? PasswordHash.make("decoy-\(UInt64.random(in: 0...UInt64.max))")) ?? "$y$j9T$decoy$"
    }

    /// Replaces the users (a reload).
    public func update(users: UsersFile) {
        self.users.withLockedValue { $0 = users }
    }

    public var hasUsers: Bool { users.withLockedValue { !$0.users.isEmpty } }

    /// What a log line may say about the user name a client typed: the name when such a user exists, `nil`
    /// otherwise. A name that matches no user is often a password typed into the wrong field, so it is
    /// never logged.
    public func loggableName(_ typed: String) -> String? {
        users.withLockedValue { $0[typed] == nil ? nil : typed }
    }

    /// Whether `address` has failed too often lately.
    public func isThrottled(_ address: String) -> Bool {
        throttle.withLockedValue { records in
            guard let record = records[address] else { return false }
            if now() - record.since > window {
                records[address] = nil
                return false
            }
            return record.count >= maximumFailures
        }
    }

    /// The user, when the password is right; `nil` otherwise (and the failure is counted). Throws
    /// ``PasswordHashPool/Unavailable`` when the password could not be checked in time (nothing is counted).
    public func authenticate(name: String, password: String, from address: String) async throws -> User? {
        let user = users.withLockedValue { $0[name] }
        let hash = user?.passwordHash ?? decoyHash
        let matches = try await hashPool.run { PasswordHash.verify(password, against: hash) }
        if matches, let user {
            throttle.withLockedValue { $0[address] = nil }
            return user
        }
        throttle.withLockedValue { records in
            let now = self.now()
            if var record = records[address], now - record.since <= window {
                record.count += 1
                records[address] = record
            } else {
                records[address] = FailureRecord(count: 1, since: now)
            }
            if records.count > 100_000 { records.removeAll() }
        }
        return nil
    }
}
