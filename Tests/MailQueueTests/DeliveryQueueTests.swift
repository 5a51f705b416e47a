import Foundation
import GRDB
import NIOCore
import SMTPProtocol
import Testing
@testable import MailQueue

/// Claiming under leases, writing results back, and finding due work through the index.
struct DeliveryQueueTests {
    @Test func twoClaimsNeverTakeTheSameRecipient() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        for _ in 0..<20 {
            let message = QueueDatabaseTests.message(recipients: ["a@x.test", "b@x.test", "c@y.test"])
            _ = try await store.pool.write { db in try store.insert(message, in: db) }
        }
        let now = Date().addingTimeInterval(1)
        async let first = store.claimDueWork(owner: "host:1", now: now, lease: .seconds(600), limit: 40, recipientsPerJob: 50)
        async let second = store.claimDueWork(owner: "host:2", now: now, lease: .seconds(600), limit: 40, recipientsPerJob: 50)
        let (a, b) = try await (first, second)
        let idsA = Set(a.flatMap { $0.recipients.map(\.id) })
        let idsB = Set(b.flatMap { $0.recipients.map(\.id) })
        #expect(idsA.isDisjoint(with: idsB))
        #expect(idsA.count + idsB.count == 60)
        // Grouped by message and domain.
        #expect(a.allSatisfy { job in job.recipients.allSatisfy { $0.address.hasSuffix("@" + job.domain) } })
        // Nothing is left to claim while the leases hold.
        #expect(try await store.claimDueWork(owner: "host:3", now: now, lease: .seconds(600), limit: 100, recipientsPerJob: 50).isEmpty)
        // A lease that runs out makes its recipients due again.
        let later = now.addingTimeInterval(601)
        #expect(try await store.claimDueWork(owner: "host:3", now: later, lease: .seconds(600), limit: 100, recipientsPerJob: 50).flatMap(\.recipients).count == 60)
    }

    @Test func releasesTheLeasesOfEarlierRunsAtStart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let message = QueueDatabaseTests.message()
        _ = try await store.pool.write { db in try store.insert(message, in: db) }
        let now = Date().addingTimeInterval(1)
        let claimed = try await store.claimDueWork(owner: "relay.test:41:7", now: now, lease: .seconds(900), limit: 10, recipientsPerJob: 50)
        #expect(claimed.count == 1)
        #expect(try await store.releaseLeases(ownerPrefix: "other.test:", now: now) == 0)
        #expect(try await store.releaseLeases(ownerPrefix: "relay.test:", now: now) == 1)
        #expect(try await store.claimDueWork(owner: "relay.test:42:1", now: now, lease: .seconds(900), limit: 10, recipientsPerJob: 50).count == 1)
    }

    @Test func recordsResultsAndRemovesFinishedMessages() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let message = QueueDatabaseTests.message(recipients: ["a@x.test", "b@x.test"])
        _ = try await store.pool.write { db in try store.insert(message, in: db) }
        let now = Date().addingTimeInterval(1)
        let job = try #require(try await store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
        let retryAt = now.addingTimeInterval(300)
        let removed = try await store.recordResults([
            RecipientResult(recipientID: job.recipients[0].id, disposition: .delivered, result: .reply("250 2.0.0 Ok", relay: "mx[127.0.0.2]:25"), attemptedAt: now),
            RecipientResult(recipientID: job.recipients[1].id, disposition: .deferred(nextAttemptAt: retryAt), result: .reply("451 4.7.1 later", relay: "mx[127.0.0.2]:25"), attemptedAt: now),
        ], messageID: job.messageID).isRemoved
        #expect(!removed)
        let stored = try #require(try store.message(queueID: message.queueID))
        #expect(stored.recipients.map(\.state) == ["delivered", "deferred"])
        #expect(stored.recipients[1].attempts == 1)
        #expect(stored.recipients[1].lastReply == "451 4.7.1 later")
        #expect(stored.recipients[1].lastRelay == "mx[127.0.0.2]:25")
        #expect(stored.recipients[1].nextAttemptAt.unixMilliseconds == retryAt.unixMilliseconds)
        // Not due before its time; due after.
        #expect(try await store.claimDueWork(owner: "h:1", now: now.addingTimeInterval(10), lease: .seconds(60), limit: 10, recipientsPerJob: 50).isEmpty)
        let retry = try #require(try await store.claimDueWork(owner: "h:1", now: retryAt, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
        let outcome = try await store.recordResults([
            RecipientResult(recipientID: retry.recipients[0].id, disposition: .failed, result: .reply("550 5.1.1 no"), attemptedAt: retryAt,
                            notice: .failure("b@x.test", "550 5.1.1 no")),
        ], messageID: retry.messageID, notification: SenderNotification(reportingMTA: "relay.test", lifetime: 3600))
        #expect(outcome.isRemoved)
        #expect(try store.message(queueID: message.queueID) == nil)
        // The bounce was made in the same transaction, from the pending notice.
        let bounce = try #require(outcome.notifications.first)
        #expect(outcome.notifications.count == 1 && bounce.kind == .failure && bounce.reportedQueueID == message.queueID)
        #expect(try store.message(queueID: bounce.queueID)?.sender == "")
    }

    @Test func dueWorkIsFoundThroughTheIndex() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let plan = try await store.pool.read { db in
            try Row.fetchAll(db, sql: """
                EXPLAIN QUERY PLAN
                SELECT r.id FROM recipient r INDEXED BY recipient_due JOIN message m ON m.id = r.message_id
                WHERE r.state IN ('queued', 'deferred') AND r.next_attempt_at <= 0 AND m.is_held = 0
                ORDER BY r.next_attempt_at LIMIT 10
                """).map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("USING INDEX recipient_due (next_attempt_at<?)") })
        #expect(!plan.contains { $0.contains("TEMP B-TREE") })
    }

    /// Fresh mail handed straight to delivery is stored claimed: no claim finds it, a crash leaves it to the
    /// start-up release, and the job carries the text as a claim would read it.
    @Test func freshMailStoredUnderALeaseComesWithItsJobs() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let message = QueueDatabaseTests.message(recipients: ["a@x.test", "b@y.test", "c@x.test"])
        let now = Date()
        let lease = DeliveryLease(owner: "relay.test:9:1", expiresAt: now.addingTimeInterval(900), messages: 1, recipientsPerJob: 50)
        let jobs = try await store.pool.write { db in try store.insert(message, in: db, lease: lease) }
        #expect(jobs.map(\.domain) == ["x.test", "y.test"])
        #expect(jobs[0].recipients.map(\.address) == ["a@x.test", "c@x.test"])
        #expect(try await store.claimDueWork(owner: "relay.test:9:2", now: now.addingTimeInterval(1), lease: .seconds(60), limit: 10, recipientsPerJob: 50).isEmpty)
        guard case .inline(let fresh) = jobs[0].content else { Issue.record("no inline text"); return }
        #expect(try store.content(queueID: message.queueID) == Data(fresh.readableBytesView))

        // The running scheduler keeps its own leases at start-up; an earlier run's are released.
        #expect(try await store.releaseLeases(ownerPrefix: "relay.test:", except: "relay.test:9:1", now: now) == 0)
        #expect(try await store.releaseLeases(ownerPrefix: "relay.test:", now: now) == 3)
        let claimed = try await store.claimDueWork(owner: "relay.test:10:1", now: now.addingTimeInterval(1), lease: .seconds(60), limit: 10, recipientsPerJob: 50)
        #expect(claimed.flatMap(\.recipients).count == 3)
        #expect(claimed.allSatisfy { $0.content == .inline(fresh) })
    }

    /// A job that settles every open recipient removes the message in one step, recipients and text with it.
    @Test func aFinalResultForEveryOpenRecipientRemovesTheMessage() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let message = QueueDatabaseTests.message(recipients: ["a@x.test", "b@x.test"])
        _ = try await store.pool.write { db in try store.insert(message, in: db) }
        let now = Date().addingTimeInterval(1)
        let job = try #require(try await store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
        #expect(try await store.recordResults(job.recipients.map {
            RecipientResult(recipientID: $0.id, disposition: .delivered, result: .reply("250 ok", relay: "mx[127.0.0.2]:25"), attemptedAt: now)
        }, messageID: job.messageID).isRemoved)
        let left = try await store.pool.read { db in
            try [Int.fetchOne(db, sql: "SELECT count(*) FROM message")!, Int.fetchOne(db, sql: "SELECT count(*) FROM recipient")!,
                 Int.fetchOne(db, sql: "SELECT count(*) FROM message_content")!]
        }
        #expect(left == [0, 0, 0])
    }

    /// A late result for a message that left the queue (deleted after its lease ran out) must not touch the
    /// new message that SQLite gave the same row ids to.
    @Test func aLateResultLeavesAMessageThatReusedTheRowIDAlone() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let old = QueueDatabaseTests.message(recipients: ["a@x.test"])
        _ = try await store.pool.write { db in try store.insert(old, in: db) }
        let now = Date().addingTimeInterval(1)
        let job = try #require(try await store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
        try await store.pool.write { db in try db.execute(sql: "DELETE FROM message WHERE id = ?", arguments: [job.messageID]) }
        let new = QueueDatabaseTests.message(recipients: ["b@x.test"])
        _ = try await store.pool.write { db in try store.insert(new, in: db) }
        let reused = try await store.pool.read { db in try Int64.fetchOne(db, sql: "SELECT id FROM message WHERE queue_id = ?", arguments: [new.queueID]) }
        #expect(reused == job.messageID)

        let removed = try await store.recordResults([QueueStore.JobRecord(
            results: job.recipients.map { RecipientResult(recipientID: $0.id, disposition: .delivered, result: .reply("250 ok"), attemptedAt: now) },
            messageID: job.messageID, queueID: job.queueID
        )])
        #expect(removed.map(\.isRemoved) == [false])
        let kept = try #require(try store.message(queueID: new.queueID))
        #expect(kept.recipients.map(\.state) == ["queued"])
    }

    /// A reply and a local error are stored apart: a later local error clears the earlier reply and relay, and
    /// the statistics count it marked as the relay's own.
    @Test func aLocalErrorReplacesTheLastReplyAndIsCountedAsLocal() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let message = QueueDatabaseTests.message(recipients: ["a@x.test"])
        try await store.pool.write { db in _ = try store.insert(message, in: db) }
        var now = Date().addingTimeInterval(1)
        for result in [AttemptResult.reply("451 4.7.1 Greylisted"),
                       .localError(LocalError(status: EnhancedStatusCode(4, 4, 1), description: "connect to mx.x.test[192.0.2.1]:25: Connection refused"))] {
            let job = try #require(try await store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
            _ = try await store.recordResults([
                RecipientResult(recipientID: job.recipients[0].id, disposition: .deferred(nextAttemptAt: now), result: result, attemptedAt: now),
            ], messageID: job.messageID)
            now = now.addingTimeInterval(1)
        }
        let recipient = try #require(try store.message(queueID: message.queueID)?.recipients.first)
        #expect(recipient.lastReply == nil && recipient.lastRelay == nil)
        #expect(recipient.lastError == "connect to mx.x.test[192.0.2.1]:25: Connection refused")
        #expect(try store.statistics().topDeferredErrors == [
            .init(lastReply: "(local) connect to mx.x.test[192.0.2.1]:25: Connection refused", recipients: 1),
        ])
    }
}
