import NIOConcurrencyHelpers

/// A clock that moves only when told to, for code that takes an injected
/// `@Sendable () -> ContinuousClock.Instant` (such as the DNS cache): tests check expiry without sleeping.
///
/// ```swift
/// let clock = ManualClock()
/// let resolver = try SystemResolver(servers: [server.address], now: clock.nowFunction)
/// clock.advance(by: .seconds(301))
/// ```
public final class ManualClock: Sendable {
    private let current: NIOLockedValueBox<ContinuousClock.Instant>

    public init(start: ContinuousClock.Instant = ContinuousClock.now) {
        self.current = NIOLockedValueBox(start)
    }

    /// The clock's time.
    public func now() -> ContinuousClock.Instant {
        self.current.withLockedValue { $0 }
    }

    /// Moves the clock forward by `duration`.
    public func advance(by duration: Duration) {
        self.current.withLockedValue { $0 += duration }
    }

    /// ``now()`` as a closure to inject.
    public var nowFunction: @Sendable () -> ContinuousClock.Instant {
        { [self] in self.now() }
    }
}
