import NIOConcurrencyHelpers

/// Counts events that code under test signals (the delivery engine's writes of results, a fake server's
/// finished connections, a lookup's answer) and wakes the tasks waiting for the next one, so that a test
/// waits for what it expects instead of sleeping and looking.
public final class EventCount: Sendable {
    private struct State {
        var count = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// How many events have happened.
    public var count: Int { state.withLockedValue { $0.count } }

    /// One more event.
    @Sendable public func signal() {
        let waiters = state.withLockedValue { state in
            state.count += 1
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once more than `seen` events have happened.
    public func wait(after seen: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let isPast = state.withLockedValue { state in
                if state.count > seen { return true }
                state.waiters.append(continuation)
                return false
            }
            if isPast { continuation.resume() }
        }
    }
}
