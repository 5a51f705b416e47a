import Testing
@testable import Delivery

/// The backoff is a pure function of the attempt count and a random draw.
struct RetryScheduleTests {
    static let schedule = RetrySchedule(minimum: .seconds(300), maximum: .seconds(3600), jitter: 0.1)

    static let middle: [(Int, Duration)] = [
        (1, .seconds(300)), (2, .seconds(600)), (3, .seconds(1200)), (4, .seconds(2400)), (5, .seconds(3600)), (50, .seconds(3600)),
    ]

    @Test(arguments: middle)
    func doublesUpToTheMaximum(attempts: Int, expected: Duration) {
        #expect(Self.schedule.delay(afterAttempts: attempts, random: 0.5) == expected)
    }

    @Test func jitterStaysWithinItsBand() {
        #expect(Self.schedule.delay(afterAttempts: 2, random: 0) == .seconds(540))
        #expect(Self.schedule.delay(afterAttempts: 2, random: 0.99) == .milliseconds(658_800))
        // Never above the maximum, never far below the minimum.
        #expect(Self.schedule.delay(afterAttempts: 10, random: 0.999) == .seconds(3600))
        #expect(Self.schedule.delay(afterAttempts: 1, random: 0) == .seconds(270))
    }

    @Test func aMaximumBelowTheMinimumIsRaised() {
        let schedule = RetrySchedule(minimum: .seconds(60), maximum: .seconds(10), jitter: 0)
        #expect(schedule.delay(afterAttempts: 3, random: 0.5) == .seconds(60))
    }
}
