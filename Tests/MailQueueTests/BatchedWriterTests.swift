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

    @Test func aRingWhileNobodyWaitsIsRememberedOnce() async {
        let doorbell = Doorbell()
        doorbell.ring()
        doorbell.ring()
        await doorbell.wait()  // returns at once: the ring was remembered
        let clock = ContinuousClock()
        let started = clock.now
        await doorbell.wait(timeout: .milliseconds(100))  // the second ring was not kept
        #expect(clock.now - started >= .milliseconds(90))
    }

    @Test func waitReturnsWhenTheTaskIsCancelled() async {
        let doorbell = Doorbell()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await doorbell.wait() }
            try? await Task.sleep(for: .milliseconds(20))
            group.cancelAll()
        }
    }
}
