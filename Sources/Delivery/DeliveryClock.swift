import Foundation
import MailQueue

/// The time the scheduler runs on, injected so that tests move it by hand: a monotonic clock for its
/// timers (the idle poll, the notice sweep) and the wall time it writes to the queue (leases,
/// `next_attempt_at`, expiry, the policy's `now`).
struct DeliveryClock: Sendable {
    /// The monotonic clock's time, as the time since this value was made.
    let now: @Sendable () -> Duration
    /// Sleeps until the monotonic clock reads `deadline` (a value of ``now``).
    let sleep: @Sendable (_ deadline: Duration) async throws -> Void
    /// The wall time.
    let date: @Sendable () -> Date

    init(clock: some Clock<Duration>, date: @escaping @Sendable () -> Date) {
        let origin = clock.now
        self.now = { origin.duration(to: clock.now) }
        self.sleep = { deadline in try await clock.sleep(until: origin.advanced(by: deadline), tolerance: nil) }
        self.date = date
    }
}

extension Doorbell {
    /// Returns when rung, when `clock` reads `deadline`, or when the task is cancelled.
    func wait(until deadline: Duration, on clock: DeliveryClock) async {
        await wait { try await clock.sleep(deadline) }
    }
}
