import PetrelTestSupport
import Testing
@testable import MailQueue

/// The group-commit loop and the doorbell it waits on.
struct BatchedWriterTests {
    @Test func writesEverySubmissionThenClosesAtFinish() async throws {
        let writer = BatchedWriter<Int, Int>(write: { requests in requests.map { $0 * 2 } })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await writer.run() }
            let answers = try await withThrowingTaskGroup(of: Int.self, returning: [Int].self) { submissions in
                for number in 1...20 { submissions.addTask { try await writer.submit(number) } }
                return try await submissions.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.sorted() == (1...20).map { $0 * 2 })
            writer.finish()
            try await group.waitForAll()
        }
        await #expect(throws: BatchedWriter<Int, Int>.Closed.self) { try await writer.submit(1) }
    }

    @Test(.timeLimit(.minutes(1))) func aRingWhileNobodyWaitsIsRememberedOnce() async {
        let doorbell = Doorbell()
        doorbell.ring()
        doorbell.ring()
        await doorbell.waitEvenIfCancelled()  // returns at once: the ring was remembered
        // The second ring was not kept: the next wait lasts until its timer, on a clock moved by hand.
        let clock = TestClock()
        let returned = EventCount()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await doorbell.wait { try await clock.sleep(for: .seconds(1)) }
                returned.signal()
            }
            await clock.waitForSleeper()
            #expect(returned.count == 0)
            clock.advance(by: .seconds(1))
        }
        #expect(returned.count == 1)
    }

    @Test(.timeLimit(.minutes(1))) func aTimedWaitReturnsWhenTheTaskIsCancelled() async {
        let doorbell = Doorbell()
        let clock = TestClock()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await doorbell.wait { try await clock.sleep(for: .seconds(3600)) } }
            await clock.waitForSleeper()
            group.cancelAll()
        }
    }
}
