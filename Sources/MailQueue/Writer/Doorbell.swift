import NIOConcurrencyHelpers

/// The one wake-up mechanism: one task waits, others ring. The batched writer waits for requests; the
/// delivery scheduler sleeps until the next recipient falls due, and a newly queued message rings to cut
/// the sleep short. Rings that arrive while nobody waits are remembered once.
public final class Doorbell: Sendable {
    private struct State {
        var isRung = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    public func ring() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            if state.waiter == nil { state.isRung = true }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns when rung, and only then, even when the task is cancelled: for a loop that only an explicit
    /// ring may end (the batched writer, which writes whatever was submitted).
    public func waitEvenIfCancelled() async {
        await waitForRing()
    }

    /// Returns when rung, when `sleep` returns (a timer on whatever clock the caller runs on), or when the
    /// task is cancelled.
    public func wait(sleepingWith sleep: @escaping @Sendable () async throws -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await sleep()
                if !Task.isCancelled { self.ring() }
            }
            group.addTask { await self.waitForRing() }
            await group.next()
            group.cancelAll()
            self.ring()  // release the ring waiter if the timer won
            await group.waitForAll()
            self.state.withLockedValue { $0.isRung = false }
        }
    }

    private func waitForRing() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state -> Bool in
                if state.isRung {
                    state.isRung = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
