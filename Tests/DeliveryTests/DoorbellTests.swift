import PetrelTestSupport
import Testing
@testable import Delivery
import MailQueue

/// The scheduler's sleep: until a deadline on its injected clock, or until rung.
struct DoorbellTests {
    @Test(.timeLimit(.minutes(1))) func aWaitEndsAtItsDeadlineOnTheClock() async {
        let clock = TestClock()
        let time = DeliveryClock(clock: clock, date: clock.wallTime)
        let doorbell = Doorbell()
        let ended = EventCount()
        // The deadline is a time on the clock, so the test need not know when the task starts to sleep.
        await withDiscardingTaskGroup { group in
            group.addTask {
                await doorbell.wait(until: .seconds(10), on: time)
                ended.signal()
            }
            clock.advance(by: .seconds(9))
            await Task.yield()
            #expect(ended.count == 0)
            clock.advance(by: .seconds(1))
        }
        #expect(ended.count == 1)
        #expect(time.now() == .seconds(10))
    }

    @Test(.timeLimit(.minutes(1))) func aRingEndsTheWaitAndIsRememberedOnce() async {
        let clock = TestClock()
        let time = DeliveryClock(clock: clock, date: clock.wallTime)
        let doorbell = Doorbell()
        doorbell.ring()
        await doorbell.wait(until: .seconds(3600), on: time)  // the ring came first
        await withDiscardingTaskGroup { group in
            group.addTask { await doorbell.wait(until: .seconds(3600), on: time) }
            doorbell.ring()
        }
        #expect(time.now() == .zero, "no time passed: the bell ended both waits")
    }

    @Test func theWallTimeMovesWithTheClock() {
        let clock = TestClock()
        let time = DeliveryClock(clock: clock, date: clock.wallTime)
        let start = time.date()
        clock.advance(by: .seconds(3601))
        #expect(time.date().timeIntervalSince(start) == 3601)
    }
}
