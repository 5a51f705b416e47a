import Foundation
import NIOConcurrencyHelpers

/// A clock that moves only when told to, for the code that takes an injected clock: the DNS cache
/// (``nowFunction``), the AUTH throttle, the delivery scheduler (its timers and, through ``wallTime``, the
/// dates it writes to the queue). ``advance(by:)`` wakes every task sleeping until a time it reaches, so
/// tests check timeouts, expiry and retries without sleeping.
///
/// ```swift
/// let clock = TestClock()
/// let resolver = try SystemResolver(servers: [server.address], now: clock.nowFunction)
/// clock.advance(by: .seconds(301))
/// ```
public final class TestClock: Clock, Sendable {
    public typealias Instant = ContinuousClock.Instant

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Instant
        var sleepers: [UInt64: Sleeper] = [:]
        /// Sleepers cancelled before they were registered.
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
        /// Tasks waiting for a sleeper (``waitForSleeper()``).
        var sleeperWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: NIOLockedValueBox<State>
    private let start: Instant
    private let startDate: Date

    /// `date` is the wall time at `start`.
    public init(start: Instant = ContinuousClock.now, date: Date = Date()) {
        self.state = NIOLockedValueBox(State(now: start))
        self.start = start
        self.startDate = date
    }

    /// The clock's time.
    public var now: Instant {
        self.state.withLockedValue { $0.now }
    }

    public var minimumResolution: Duration { .zero }

    /// The wall time that goes with ``now``: it moves with the clock.
    public var date: Date {
        let (seconds, attoseconds) = (self.now - self.start).components
        return self.startDate.addingTimeInterval(TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18)
    }

    /// Returns once the clock has been advanced to `deadline`; throws `CancellationError` when the task is
    /// cancelled first.
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = self.state.withLockedValue { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (result, waiters): (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) = self.state.withLockedValue { state in
                    if state.cancelled.remove(id) != nil { return (.failure(CancellationError()), []) }
                    if deadline <= state.now { return (.success(()), []) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    defer { state.sleeperWaiters = [] }
                    return (nil, state.sleeperWaiters)
                }
                if let result { continuation.resume(with: result) }
                for waiter in waiters { waiter.resume() }
            }
        } onCancel: {
            let sleeper: Sleeper? = self.state.withLockedValue { state in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return sleeper
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Returns once a task sleeps on the clock: a test that moves the clock then knows the move is not lost
    /// between the sleeper's look at the time and its sleep.
    public func waitForSleeper() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let isSleeping = self.state.withLockedValue { state in
                if !state.sleepers.isEmpty { return true }
                state.sleeperWaiters.append(continuation)
                return false
            }
            if isSleeping { continuation.resume() }
        }
    }

    /// Moves the clock forward by `duration` and wakes the sleepers whose time has come.
    public func advance(by duration: Duration) {
        let woken = self.state.withLockedValue { state in
            state.now += duration
            let due = state.sleepers.filter { $0.value.deadline <= state.now }
            for id in due.keys { state.sleepers[id] = nil }
            return due.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// ``now`` as a closure to inject.
    public var nowFunction: @Sendable () -> Instant {
        { [self] in self.now }
    }

    /// ``date`` as a closure to inject.
    public var wallTime: @Sendable () -> Date {
        { [self] in self.date }
    }
}
