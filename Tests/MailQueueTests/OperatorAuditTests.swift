import Foundation
import Testing
@testable import MailQueue

/// The operator's audit trail: one entry per message an action reached, written with the action, and
/// for a `delete` or `bounce` that waits for an attempt, given to the server's log once that attempt ends.
struct OperatorAuditTests {
    typealias Fixture = QueueAdministrationTests.Fixture
    static let alice = ActionRequest(operatorName: "alice", reason: "spam\r\nrun")
    static let notification = QueueAdministrationTests.notification

    /// What the server would log now (and the entries are gone once given), one summary per entry: the
    /// log's wording is the log format's (PetrelTests), what it says is the queue's.
    static func logged(_ queue: Fixture) async throws -> [String] {
        var lines: [String] = []
        try await queue.store.logOperatorAudit { entry in
            var line = "\(entry.queueID): \(entry.action) by \(entry.operatorName)"
            if let reason = entry.reason { line += " (reason: \(reason))" }
            if entry.namesRecipients { line += " recipients=\(entry.recipients)" }
            if !entry.settledByAttempt.isEmpty { line += " settled=\(entry.settledByAttempt)" }
            if !entry.handedOver.isEmpty { line += " handed over=\(entry.handedOver)" }
            lines.append(line)
        }
        return lines
    }

    static func claim(_ queue: Fixture, now: Date) async throws -> DeliveryJob {
        try #require(try await queue.store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
    }

    @Test func eachMessageActedOnIsLoggedOnceWithTheOperatorAndTheReason() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let first = try queue.add(to: ["x@far.test"])
        let second = try queue.add(to: ["y@far.test"])
        try queue.store.perform(.hold, on: .queueIDs([first, second]), requestedBy: Self.alice)
        try queue.store.perform(.release, on: .queueIDs([first]), requestedBy: ActionRequest(operatorName: "bob"))
        try queue.store.perform(.retry, on: .queueIDs([first]), requestedBy: ActionRequest(operatorName: "bob"))
        try queue.store.perform(.delete, on: .queueIDs([second]), requestedBy: Self.alice)
        #expect(try await Self.logged(queue) == [
            "\(first): hold by alice (reason: spam run)",
            "\(second): hold by alice (reason: spam run)",
            "\(first): release by bob",
            "\(first): retry by bob",
            "\(second): delete by alice (reason: spam run)",
        ])
        #expect(try await Self.logged(queue) == [], "each line once")
    }

    @Test func anActionThatChangesNothingIsNotLogged() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test"])
        try queue.store.perform(.release, on: .queueIDs([queueID, "0000000000ZZZZ"]))
        #expect(try await Self.logged(queue) == [])
    }

    @Test func anActionOnSomeRecipientsNamesThem() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@dead.test", "y@far.test"])
        try queue.store.perform(.bounce(reason: "gone", notification: Self.notification),
                                on: .matching(QueueFilter(domain: "dead.test")), requestedBy: ActionRequest(operatorName: "root", reason: "gone"))
        #expect(try await Self.logged(queue) == [#"\#(queueID): bounce by root (reason: gone) recipients=["x@dead.test"]"#])
    }

    @Test func aDeleteThatWaitsForAnAttemptIsLoggedWhenTheAttemptEnds() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test", "y@far.test"])
        let now = Date().addingTimeInterval(1)
        let job = try await Self.claim(queue, now: now)
        try queue.update(queueID, "y@far.test", "lease_owner = NULL, lease_expires_at = NULL")  // only x is in delivery
        #expect(try queue.store.perform(.delete, on: .queueIDs([queueID]), requestedBy: Self.alice).map(\.outcome) == [.deleted])
        #expect(try await Self.logged(queue) == [], "x is still being delivered")
        _ = try await queue.store.recordResults([
            RecipientResult(recipientID: job.recipients[0].id, disposition: .deferred(nextAttemptAt: now.addingTimeInterval(300)),
                            result: .reply("451 4.4.1 later"), attemptedAt: now),
        ], messageID: job.messageID, notification: nil)
        #expect(try queue.message(queueID) == nil)
        #expect(try await Self.logged(queue) == ["\(queueID): delete by alice (reason: spam run)"])
        #expect(try await Self.logged(queue) == [])
    }

    @Test func aWaitingBounceSaysWhichRecipientsTheAttemptSettled() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test", "y@far.test"])
        let now = Date().addingTimeInterval(1)
        let job = try await Self.claim(queue, now: now)
        try queue.store.perform(.bounce(reason: nil, notification: Self.notification), on: .queueIDs([queueID]),
                                requestedBy: ActionRequest(operatorName: "root"))
        _ = try await queue.store.recordResults([
            RecipientResult(recipientID: job.recipients[0].id, disposition: .delivered, result: .reply("250 2.0.0 Ok", relay: "mx"), attemptedAt: now),
            RecipientResult(recipientID: job.recipients[1].id, disposition: .deferred(nextAttemptAt: now.addingTimeInterval(300)),
                            result: .reply("451 4.4.1 later", relay: "mx"), attemptedAt: now),
        ], messageID: job.messageID, notification: nil)
        #expect(try await Self.logged(queue) == [
            #"\#(queueID): bounce by root recipients=["y@far.test"] settled=["x@far.test"]"#,
        ])
    }

    @Test func aLaterRequestTakesAWaitingActionOver() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test"])
        let now = Date().addingTimeInterval(1)
        let job = try await Self.claim(queue, now: now)
        try queue.store.perform(.delete, on: .queueIDs([queueID]), requestedBy: ActionRequest(operatorName: "alice"))
        try queue.store.perform(.delete, on: .queueIDs([queueID]), requestedBy: ActionRequest(operatorName: "bob"))
        #expect(try await Self.logged(queue) == [#"\#(queueID): delete by alice recipients=[] handed over=["x@far.test"]"#])
        try await queue.store.releaseLeases(recipientIDs: job.recipients.map(\.id), now: now)
        #expect(try await Self.logged(queue) == ["\(queueID): delete by bob"])
    }
}
