import Foundation
import GRDB
import MailQueue
import SMTPProtocol
import Testing

/// The notices a message's results owe its sender wait in the queue until the round ends, then become
/// one notification per kind listing every recipient: never lost, never sent twice.
struct PendingNoticeTests {
    static let notification = SenderNotification(reportingMTA: "relay.test", lifetime: 3600)

    static func openStore() throws -> (TemporaryDirectory, QueueStore, Date) {
        let directory = try TemporaryDirectory()
        return (directory, try QueueStore.open(path: directory.path + "/queue.sqlite"), Date().addingTimeInterval(1))
    }

    /// A message to x.test and y.test, claimed: two jobs under one lease, as a round starts.
    static func claimedMessage(_ store: QueueStore, now: Date) async throws -> (IncomingMessage, [DeliveryJob]) {
        let message = QueueDatabaseTests.message(recipients: ["a@x.test", "b@y.test"])
        try await store.pool.write { db in _ = try store.insert(message, in: db) }
        let jobs = try await store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50)
        #expect(jobs.map(\.domain) == ["x.test", "y.test"])
        return (message, jobs)
    }

    static func failed(_ job: DeliveryJob, now: Date) -> [RecipientResult] {
        job.recipients.map {
            RecipientResult(recipientID: $0.id, disposition: .failed, result: .reply("550 5.1.1 no such user"), attemptedAt: now,
                            notice: .failure($0.address, "550 5.1.1 no such user"))
        }
    }

    static func pendingCount(_ store: QueueStore) async throws -> Int {
        try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM pending_notice") ?? 0 }
    }

    static func text(_ store: QueueStore, _ queueID: String) throws -> String {
        String(decoding: try #require(try store.content(queueID: queueID)), as: UTF8.self)
    }

    @Test func aFailureWaitsForTheOtherJobOfItsMessageThenOneBounceListsBoth() async throws {
        let (directory, store, now) = try Self.openStore()
        defer { directory.remove() }
        let (message, jobs) = try await Self.claimedMessage(store, now: now)

        let first = try await store.recordResults(Self.failed(jobs[0], now: now), messageID: jobs[0].messageID, notification: Self.notification)
        #expect(!first.isRemoved)
        #expect(first.notifications.isEmpty, "b@y.test is still in delivery: its result may join the bounce")
        #expect(try await Self.pendingCount(store) == 1)

        let second = try await store.recordResults(Self.failed(jobs[1], now: now), messageID: jobs[1].messageID, notification: Self.notification)
        #expect(second.isRemoved)
        let bounce = try #require(second.notifications.first)
        #expect(second.notifications.count == 1)
        #expect(bounce.kind == .failure && bounce.reportedQueueID == message.queueID)
        let text = try Self.text(store, bounce.queueID)
        #expect(text.contains("Final-Recipient: rfc822; a@x.test"))
        #expect(text.contains("Final-Recipient: rfc822; b@y.test"))
        #expect(text.contains("Reporting-MTA: dns; relay.test"))
        #expect(try await Self.pendingCount(store) == 0)
        #expect(try store.messageCount() == 1, "the bounce alone is left")
    }

    /// The other job never reports (its worker crashed): once its lease runs out, or the bound passes, the
    /// sweep sends the waiting notice, once.
    @Test func aNoticeWhoseOtherJobNeverEndsIsSentByTheSweepOnce() async throws {
        let (directory, store, now) = try Self.openStore()
        defer { directory.remove() }
        let (message, jobs) = try await Self.claimedMessage(store, now: now)
        _ = try await store.recordResults(Self.failed(jobs[0], now: now), messageID: jobs[0].messageID, notification: Self.notification)

        // The lease of b@y.test holds and the notice is fresh: it waits.
        #expect(try await store.sendDueNotices(now: now.addingTimeInterval(1), gatheredBefore: now.addingTimeInterval(-60)).isEmpty)
        #expect(try await Self.pendingCount(store) == 1)
        // The lease has run out (a crash): the notice waits for nothing any more.
        let later = now.addingTimeInterval(61)
        let made = try await store.sendDueNotices(now: later, gatheredBefore: later.addingTimeInterval(-60))
        #expect(made.map(\.kind) == [.failure])
        #expect(made.map(\.reportedQueueID) == [message.queueID])
        let text = try Self.text(store, made[0].queueID)
        #expect(text.contains("Final-Recipient: rfc822; a@x.test") && !text.contains("Final-Recipient: rfc822; b@y.test"))
        #expect(try await store.sendDueNotices(now: later, gatheredBefore: later).isEmpty, "never twice")
        #expect(try await Self.pendingCount(store) == 0)
        #expect(try store.message(queueID: message.queueID) != nil, "b@y.test is still to be delivered")
    }

    @Test func aNoticeWaitsNoLongerThanTheBoundWhileTheOtherJobIsStuck() async throws {
        let (directory, store, now) = try Self.openStore()
        defer { directory.remove() }
        let (_, jobs) = try await Self.claimedMessage(store, now: now)
        _ = try await store.recordResults(Self.failed(jobs[0], now: now), messageID: jobs[0].messageID, notification: Self.notification)
        // Still leased, but the notice was noted before the bound.
        let made = try await store.sendDueNotices(now: now.addingTimeInterval(30), gatheredBefore: now.addingTimeInterval(29))
        #expect(made.count == 1)
    }

    /// Delay warnings found together make one warning for the message too.
    @Test func delayNoticesOfOneRoundMakeOneWarning() async throws {
        let (directory, store, now) = try Self.openStore()
        defer { directory.remove() }
        let (message, jobs) = try await Self.claimedMessage(store, now: now)
        var made: [QueueStore.MadeNotification] = []
        for job in jobs {
            let results = job.recipients.map {
                RecipientResult(recipientID: $0.id, disposition: .deferred(nextAttemptAt: now.addingTimeInterval(300)),
                                result: .localError(LocalError(status: EnhancedStatusCode(4, 4, 1), description: "connect to mx[192.0.2.1]:25: Connection refused")),
                                attemptedAt: now,
                                notice: RecipientDeliveryStatus(finalRecipient: $0.address, action: .delayed, status: EnhancedStatusCode(4, 4, 1),
                                                                diagnosticCode: "X-Petrel; connect to mx[192.0.2.1]:25: Connection refused",
                                                                lastAttemptSeconds: 1_700_000_000, willRetryUntilSeconds: 1_700_086_400))
            }
            made += try await store.recordResults(results, messageID: job.messageID, notification: Self.notification, markDelayWarned: now).notifications
        }
        #expect(made.map(\.kind) == [.delay])
        let text = try Self.text(store, made[0].queueID)
        #expect(text.contains("Action: delayed"))
        #expect(text.contains("Final-Recipient: rfc822; a@x.test") && text.contains("Final-Recipient: rfc822; b@y.test"))
        #expect(!text.contains("Remote-MTA"))
        let stored = try #require(try store.message(queueID: message.queueID))
        #expect(stored.recipients.map(\.lastError) == Array(repeating: "connect to mx[192.0.2.1]:25: Connection refused", count: 2))
        #expect(stored.recipients.map(\.lastReply) == [nil, nil])
    }
}
