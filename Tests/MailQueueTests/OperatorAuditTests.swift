import Foundation
import Testing
@testable import MailQueue

/// The operator's audit trail: one entry per message an action reached, written with the action, and
/// for a `delete` or `bounce` that waits for an attempt, given to the server's log once that attempt ends.
struct OperatorAuditTests {
    typealias Fixture = QueueAdministrationTests.Fixture
    static let alice = ActionRequest(operatorName: "alice", reason: "spam\r\nrun")
    static let notification = QueueAdministrationTests.notification

    /// The lines the server would log now (and the entries are gone once given).
    static func logged(_ queue: Fixture) async throws -> [String] {
        var lines: [String] = []
        try await queue.store.logOperatorAudit { lines.append($0.logLine) }
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
            "\(first): held by operator alice (reason: spam run)",
            "\(second): held by operator alice (reason: spam run)",
            "\(first): released by operator bob",
            "\(first): retried by operator bob",
            "\(second): removed by operator alice (reason: spam run)",
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
        #expect(try await Self.logged(queue) == ["\(queueID): bounced <x@dead.test> by operator root (reason: gone)"])
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
                            reply: "451 4.4.1 later", relay: nil, attemptedAt: now),
        ], messageID: job.messageID, notifications: [])
        #expect(try queue.message(queueID) == nil)
        #expect(try await Self.logged(queue) == ["\(queueID): removed by operator alice (reason: spam run)"])
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
            RecipientResult(recipientID: job.recipients[0].id, disposition: .delivered, reply: "250 2.0.0 Ok", relay: "mx", attemptedAt: now),
            RecipientResult(recipientID: job.recipients[1].id, disposition: .deferred(nextAttemptAt: now.addingTimeInterval(300)),
                            reply: "451 4.4.1 later", relay: "mx", attemptedAt: now),
        ], messageID: job.messageID, notifications: [])
        #expect(try await Self.logged(queue) == [
            "\(queueID): bounced <y@far.test> by operator root; <x@far.test> settled by the attempt under way",
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
        #expect(try await Self.logged(queue) == ["\(queueID): removed nothing by operator alice; <x@far.test> left to a later request"])
        try await queue.store.releaseLeases(recipientIDs: job.recipients.map(\.id), now: now)
        #expect(try await Self.logged(queue) == ["\(queueID): removed by operator bob"])
    }

    @Test func aLongListOfRecipientsIsCutShort() {
        let entry = OperatorAuditEntry(queueID: "65SHN2V1Q8K0TZ", action: "retry", operatorName: "root", reason: nil,
                                       isWholeMessage: false, recipients: (1...7).map { "r\($0)@x.test" }, inDelivery: [])
        #expect(entry.logLine == "65SHN2V1Q8K0TZ: retried <r1@x.test> <r2@x.test> <r3@x.test> <r4@x.test> <r5@x.test> and 2 more by operator root")
    }
}
