import Foundation
import GRDB
import NIOCore
import SMTPProtocol
import Testing
@testable import MailQueue

/// The operator's actions (`petrel queue hold|release|retry|delete|bounce`) on a real queue file, with
/// recipients in every state, some of them being delivered (leased) while the action runs.
struct QueueAdministrationTests {
    static let notification = SenderNotification(reportingMTA: "relay.test", lifetime: 86400)

    /// A queue file in a temporary directory; `remove()` when done.
    struct Fixture {
        let directory: TemporaryDirectory
        let store: QueueStore

        init() throws {
            directory = try TemporaryDirectory()
            store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        }

        func remove() { directory.remove() }

        /// Queues a message and returns its queue id.
        @discardableResult
        func add(
            from sender: String? = "a@b.test", to recipients: [String] = ["x@far.test"], arrivedAgo: TimeInterval = 0,
            notify: RecipientParameters.Notify? = nil, dsnReturn: MailParameters.Return? = nil,
            body: String = "Subject: hello\r\nFrom: a@b.test\r\n\r\nThe text.\r\n", spooled: Bool = false
        ) throws -> String {
            let arrivedAt = Date().addingTimeInterval(-arrivedAgo)
            let queueID = QueueID.make(at: arrivedAt)
            var parameters = MailParameters()
            parameters.dsnReturn = dsnReturn
            let envelope = Envelope(
                reversePath: sender.flatMap(SenderNotification.mailbox),
                parameters: parameters,
                recipients: recipients.map {
                    var recipient = EnvelopeRecipient(mailbox: SenderNotification.mailbox($0)!)
                    recipient.parameters.notify = notify
                    return recipient
                },
                client: ClientIdentity(address: "127.0.0.1", greetingName: "client", protocolName: "ESMTP")
            )
            let content: IncomingMessage.Content
            if spooled {
                _ = FileManager.default.createFile(atPath: store.spoolDirectory + "/" + queueID, contents: Data(body.utf8))
                content = .spooled(fileName: queueID)
            } else {
                content = .inline(ByteBuffer(string: body))
            }
            let message = IncomingMessage(
                queueID: queueID, envelope: envelope, traceHeaders: ByteBuffer(string: "Received: from client\r\n"),
                content: content, contentSize: body.utf8.count, arrivedAt: arrivedAt, expiresAt: arrivedAt.addingTimeInterval(86400)
            )
            _ = try store.pool.write { db in try store.insert(message, in: db) }
            return queueID
        }

        /// Sets a recipient's columns directly (state, reply, lease…).
        func update(_ queueID: String, _ address: String, _ assignments: String, _ arguments: StatementArguments = []) throws {
            try store.pool.write { db in
                try db.execute(sql: """
                    UPDATE recipient SET \(assignments)
                    WHERE address = ? AND message_id = (SELECT id FROM message WHERE queue_id = ?)
                    """, arguments: arguments + [address, queueID])
            }
        }

        /// Leases a recipient to a delivery worker, as `claimDueWork` does: an attempt is under way.
        func lease(_ queueID: String, _ address: String, owner: String = "relay.test:1:1", for seconds: TimeInterval = 600) throws {
            let until = Date().addingTimeInterval(seconds).unixMilliseconds
            try update(queueID, address, "lease_owner = ?, lease_expires_at = ?, next_attempt_at = ?", [owner, until, until])
        }

        func message(_ queueID: String) throws -> QueuedMessage? { try store.message(queueID: queueID) }

        func recipientID(_ queueID: String, _ address: String) throws -> Int64 {
            try store.pool.read { db in
                try Int64.fetchOne(db, sql: """
                    SELECT r.id FROM recipient r JOIN message m ON m.id = r.message_id WHERE m.queue_id = ? AND r.address = ?
                    """, arguments: [queueID, address])!
            }
        }

        func messageID(_ queueID: String) throws -> Int64 {
            try store.pool.read { db in try Int64.fetchOne(db, sql: "SELECT id FROM message WHERE queue_id = ?", arguments: [queueID])! }
        }

        /// The notifications in the queue (messages from the null sender), with their text.
        func notifications() throws -> [(message: QueuedMessage, text: String)] {
            try store.listMessages(matching: QueueFilter(sender: "<>")).map { message in
                (message, String(decoding: try store.content(queueID: message.queueID)!, as: UTF8.self))
            }
        }

        func pendingActionCount() throws -> Int {
            try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM pending_action") ?? 0 }
        }

        /// The queue ids a claim would take now.
        func claimable() throws -> Set<String> {
            try store.pool.read { db in
                Set(try String.fetchAll(db, sql: """
                    SELECT DISTINCT m.queue_id FROM recipient r JOIN message m ON m.id = r.message_id
                    WHERE r.state IN ('queued', 'deferred') AND r.next_attempt_at <= ? AND m.is_held = 0
                    """, arguments: [Date().addingTimeInterval(1).unixMilliseconds]))
            }
        }
    }

    // MARK: - hold, release, retry

    @Test func heldMessagesAreNotClaimedUntilReleasedAndThenAreDueNow() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let held = try queue.add(to: ["x@far.test", "y@far.test"])
        let other = try queue.add()
        try queue.update(held, "y@far.test", "state = 'deferred', next_attempt_at = ?", [Date().addingTimeInterval(3600).unixMilliseconds])

        let results = try queue.store.perform(.hold, on: .queueIDs([held.lowercased()]))
        #expect(results == [QueueActionResult(queueID: held, outcome: .held)])
        #expect(try queue.message(held)?.isHeld == true)
        #expect(try queue.store.perform(.hold, on: .queueIDs([held])).map(\.outcome) == [.alreadyHeld])
        // Not claimed, not a reason to wake the scheduler, and not retried while held.
        let jobs = try await queue.store.claimDueWork(owner: "h:1", now: Date().addingTimeInterval(7200), lease: .seconds(60), limit: 100, recipientsPerJob: 50)
        #expect(jobs.map(\.queueID) == [other])
        #expect(try queue.store.perform(.retry, on: .queueIDs([held])).map(\.outcome) == [.onHold])

        let released = try queue.store.perform(.release, on: .queueIDs([held]))
        #expect(released.map(\.outcome) == [.released])
        #expect(released[0].recipients == ["x@far.test", "y@far.test"])
        let message = try #require(try queue.message(held))
        #expect(!message.isHeld)
        #expect(message.recipients.allSatisfy { $0.nextAttemptAt <= Date() })
        #expect(try queue.claimable().contains(held))
        #expect(try queue.store.perform(.release, on: .queueIDs([held])).map(\.outcome) == [.notHeld])
    }

    @Test func holdLetsTheAttemptUnderWayEndAndStartsNoOther() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test"])
        let now = Date().addingTimeInterval(1)
        let job = try #require(try await queue.store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)

        let results = try queue.store.perform(.hold, on: .queueIDs([queueID]))
        #expect(results == [QueueActionResult(queueID: queueID, outcome: .held, inDelivery: ["x@far.test"])])
        // The attempt ends deferred: the result is written, the message stays held and unclaimed.
        try await queue.store.recordResults([
            RecipientResult(recipientID: job.recipients[0].id, disposition: .deferred(nextAttemptAt: now), result: .reply("451 4.4.1 later"), attemptedAt: now),
        ], messageID: job.messageID)
        let message = try #require(try queue.message(queueID))
        #expect(message.isHeld)
        #expect(message.recipients[0].state == "deferred")
        #expect(message.recipients[0].attempts == 1)
        #expect(try queue.claimable().isEmpty)
    }

    @Test func retryMakesPendingRecipientsDueNowAndLeavesThoseInDeliveryAlone() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let later = Date().addingTimeInterval(3600).unixMilliseconds
        let queueID = try queue.add(to: ["x@far.test", "y@near.test", "z@far.test"])
        try queue.update(queueID, "x@far.test", "state = 'deferred', attempts = 2, next_attempt_at = ?", [later])
        try queue.update(queueID, "z@far.test", "state = 'delivered'")
        try queue.lease(queueID, "y@near.test")
        #expect(try queue.claimable().isEmpty)

        let results = try queue.store.perform(.retry, on: .queueIDs([queueID]))
        #expect(results == [QueueActionResult(queueID: queueID, outcome: .retried, recipients: ["x@far.test"], inDelivery: ["y@near.test"])])
        let recipients = try #require(try queue.message(queueID)).recipients
        #expect(recipients[0].nextAttemptAt <= Date())
        #expect(recipients[0].attempts == 2)
        #expect(recipients[1].isInDelivery)
        #expect(recipients[1].nextAttemptAt > Date().addingTimeInterval(60))
        #expect(recipients[2].state == "delivered")
        #expect(try queue.claimable() == [queueID])

        // Only in delivery: nothing to do.
        let busy = try queue.add(to: ["w@far.test"])
        try queue.lease(busy, "w@far.test")
        #expect(try queue.store.perform(.retry, on: .queueIDs([busy])).map(\.outcome) == [.inDelivery])
    }

    @Test func retryWithADomainFilterTouchesOnlyThatDomain() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let later = Date().addingTimeInterval(3600).unixMilliseconds
        let queueID = try queue.add(to: ["x@stuck.test", "y@fine.test"])
        try queue.update(queueID, "x@stuck.test", "state = 'deferred', next_attempt_at = ?", [later])
        try queue.update(queueID, "y@fine.test", "state = 'deferred', next_attempt_at = ?", [later])
        let results = try queue.store.perform(.retry, on: .matching(QueueFilter(domain: "STUCK.test")))
        #expect(results.map(\.recipients) == [["x@stuck.test"]])
        let recipients = try #require(try queue.message(queueID)).recipients
        #expect(recipients[0].nextAttemptAt <= Date())
        #expect(recipients[1].nextAttemptAt.unixMilliseconds == later)
    }

    // MARK: - delete

    @Test func deleteRemovesTheMessageAndItsSpoolFileWithoutABounce() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let spooled = try queue.add(to: ["x@far.test", "y@far.test"], spooled: true)
        try queue.update(spooled, "y@far.test", "state = 'delivered'")
        let inline = try queue.add()
        let kept = try queue.add()
        #expect(FileManager.default.fileExists(atPath: queue.store.spoolDirectory + "/" + spooled))

        let results = try queue.store.perform(.delete, on: .queueIDs([spooled, inline, "0000000000ZZZZ"]))
        #expect(results == [
            QueueActionResult(queueID: spooled, outcome: .deleted, recipients: ["x@far.test"], isRemoved: true),
            QueueActionResult(queueID: inline, outcome: .deleted, recipients: ["x@far.test"], isRemoved: true),
            QueueActionResult(queueID: "0000000000ZZZZ", outcome: .notFound),
        ])
        #expect(try queue.message(spooled) == nil)
        #expect(try queue.message(inline) == nil)
        #expect(!FileManager.default.fileExists(atPath: queue.store.spoolDirectory + "/" + spooled))
        #expect(try queue.store.listMessages(matching: QueueFilter()).map(\.queueID) == [kept])
        #expect(try queue.notifications().isEmpty)
        // Nothing left behind: no recipient, content or pending action row.
        let orphans = try queue.store.pool.read { db in
            try Int.fetchOne(db, sql: """
                SELECT (SELECT count(*) FROM recipient WHERE message_id NOT IN (SELECT id FROM message))
                     + (SELECT count(*) FROM message_content WHERE message_id NOT IN (SELECT id FROM message))
                     + (SELECT count(*) FROM pending_action)
                """)
        }
        #expect(orphans == 0)
    }

    @Test func deleteWithARecipientFilterRemovesOnlyThoseRecipients() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let mixed = try queue.add(to: ["x@dead.test", "y@alive.test"])
        let onlyDead = try queue.add(to: ["z@dead.test"])
        let results = try queue.store.perform(.delete, on: .matching(QueueFilter(domain: "dead.test")))
        #expect(results == [
            QueueActionResult(queueID: mixed, outcome: .deleted, recipients: ["x@dead.test"]),
            QueueActionResult(queueID: onlyDead, outcome: .deleted, recipients: ["z@dead.test"], isRemoved: true),
        ])
        #expect(try queue.message(mixed)?.recipients.map(\.address) == ["y@alive.test"])
        #expect(try queue.message(onlyDead) == nil)
    }

    @Test func deleteOfARecipientInDeliveryWaitsForTheAttemptToEnd() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test", "y@near.test"], spooled: true)
        let now = Date().addingTimeInterval(1)
        // One job (far.test) is claimed; the other recipient is not due yet.
        try queue.update(queueID, "y@near.test", "next_attempt_at = ?", [now.addingTimeInterval(3600).unixMilliseconds])
        let job = try #require(try await queue.store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)

        let results = try queue.store.perform(.delete, on: .queueIDs([queueID]))
        #expect(results == [QueueActionResult(queueID: queueID, outcome: .deleted, recipients: ["y@near.test"], inDelivery: ["x@far.test"])])
        let waiting = try #require(try queue.message(queueID))
        #expect(waiting.recipients.map(\.address) == ["x@far.test"])
        #expect(waiting.recipients[0].pendingAction == "delete")
        #expect(FileManager.default.fileExists(atPath: queue.store.spoolDirectory + "/" + queueID), "the worker still reads it")

        // The attempt ends deferred: the delete applies, the message and its file go.
        let removed = try await queue.store.recordResults([
            RecipientResult(recipientID: job.recipients[0].id, disposition: .deferred(nextAttemptAt: now.addingTimeInterval(300)), result: .reply("451 4.4.1 later"), attemptedAt: now),
        ], messageID: job.messageID).isRemoved
        #expect(removed)
        #expect(try queue.message(queueID) == nil)
        #expect(!FileManager.default.fileExists(atPath: queue.store.spoolDirectory + "/" + queueID))
        #expect(try queue.notifications().isEmpty)
    }

    @Test func deleteOnlyInDeliveryIsPendingAndADeliveryStandsWhenTheAttemptDelivers() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test"])
        let now = Date().addingTimeInterval(1)
        let job = try #require(try await queue.store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
        #expect(try queue.store.perform(.delete, on: .queueIDs([queueID])) == [
            QueueActionResult(queueID: queueID, outcome: .deletePending, inDelivery: ["x@far.test"]),
        ])
        // A second action while it waits changes nothing more.
        #expect(try queue.store.perform(.delete, on: .queueIDs([queueID])).map(\.outcome) == [.deletePending])
        #expect(try await queue.store.recordResults([
            RecipientResult(recipientID: job.recipients[0].id, disposition: .delivered, result: .reply("250 2.0.0 Ok", relay: "mx[127.0.0.2]:25"), attemptedAt: now),
        ], messageID: job.messageID, ).isRemoved)
        #expect(try queue.message(queueID) == nil)
        #expect(try queue.pendingActionCount() == 0)
    }

    // MARK: - bounce

    @Test func bounceFailsPendingRecipientsAndQueuesOneBounceWithTheReason() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test", "y@far.test", "z@far.test"], dsnReturn: .headers)
        try queue.update(queueID, "y@far.test", "state = 'delivered'")
        try queue.update(queueID, "z@far.test", "state = 'deferred', attempts = 3, last_reply = '451 4.4.1 timeout'")

        let results = try queue.store.perform(.bounce(reason: "Destination retired\r\nfor good", notification: Self.notification), on: .queueIDs([queueID]))
        #expect(results.count == 1)
        #expect(results[0].outcome == .bounced)
        #expect(results[0].recipients == ["x@far.test", "z@far.test"])
        #expect(results[0].isRemoved)
        #expect(try queue.message(queueID) == nil)

        let notices = try queue.notifications()
        #expect(notices.count == 1)
        let (notice, text) = try #require(notices.first)
        #expect(notice.queueID == results[0].notification)
        #expect(notice.sender == "")
        #expect(notice.recipients.map(\.address) == ["a@b.test"])
        #expect(text.contains("Final-Recipient: rfc822; x@far.test"))
        #expect(text.contains("Final-Recipient: rfc822; z@far.test"))
        #expect(!text.contains("y@far.test"), "a delivered recipient is not bounced")
        #expect(text.contains("Status: 5.0.0"))
        let unfolded = text.replacingOccurrences(of: "\r\n ", with: " ")
        #expect(unfolded.contains("Diagnostic-Code: X-Petrel; 550 5.0.0 Returned by the postmaster: Destination retired for good"))
        #expect(text.contains("Reporting-MTA: dns; relay.test"))
        #expect(text.contains("Subject: hello"), "the original header section is returned")
        #expect(!text.contains("The text."), "RET=HDRS: without the body")
    }

    @Test func bounceSendsNothingForANullSenderNorForNotifyNever() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let bounceOfABounce = try queue.add(from: nil, to: ["x@far.test"])
        let never = try queue.add(to: ["y@far.test"], notify: .never)
        let results = try queue.store.perform(.bounce(reason: nil, notification: Self.notification), on: .queueIDs([bounceOfABounce, never]))
        #expect(results == [
            QueueActionResult(queueID: bounceOfABounce, outcome: .bounced, recipients: ["x@far.test"], isRemoved: true),
            QueueActionResult(queueID: never, outcome: .bounced, recipients: ["y@far.test"], isRemoved: true),
        ])
        #expect(try queue.store.messageCount() == 0)
    }

    @Test func bounceWithADomainFilterBouncesOnlyThatDomain() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@dead.test", "y@alive.test"], dsnReturn: .full, spooled: true)
        let results = try queue.store.perform(.bounce(reason: "no such domain", notification: Self.notification),
                                              on: .matching(QueueFilter(state: .queued, domain: "dead.test")))
        #expect(results.map(\.recipients) == [["x@dead.test"]])
        let message = try #require(try queue.message(queueID))
        #expect(message.recipients.map(\.state) == ["failed", "queued"])
        #expect(message.recipients[0].lastError == "550 5.0.0 Returned by the postmaster: no such domain")
        #expect(message.recipients[0].lastReply == nil, "no server said it")
        let text = try #require(try queue.notifications().first?.text)
        #expect(text.contains("x@dead.test") && !text.contains("Final-Recipient: rfc822; y@alive.test"))
        #expect(text.contains("The text."), "RET=FULL: the whole message, read from its spool file")
    }

    @Test func bounceOfARecipientInDeliveryAppliesWhenTheAttemptDefers() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test"])
        let now = Date().addingTimeInterval(1)
        let job = try #require(try await queue.store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
        #expect(try queue.store.perform(.bounce(reason: "given up", notification: Self.notification), on: .queueIDs([queueID])) == [
            QueueActionResult(queueID: queueID, outcome: .bouncePending, inDelivery: ["x@far.test"]),
        ])
        #expect(try queue.notifications().isEmpty, "no bounce before the attempt ends")
        #expect(try queue.message(queueID)?.recipients[0].pendingAction == "bounce")

        #expect(try await queue.store.recordResults([
            RecipientResult(recipientID: job.recipients[0].id, disposition: .deferred(nextAttemptAt: now.addingTimeInterval(300)), result: .reply("451 4.4.1 later"), attemptedAt: now),
        ], messageID: job.messageID, ).isRemoved)
        #expect(try queue.message(queueID) == nil)
        let text = try #require(try queue.notifications().first?.text)
        #expect(text.contains("Returned by the postmaster: given up"))
        // The bounce itself is not touched by the pending action.
        #expect(try queue.pendingActionCount() == 0)
    }

    @Test func bounceOfARecipientInDeliveryIsDroppedWhenTheAttemptDeliversOrFails() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let queueID = try queue.add(to: ["x@far.test", "y@far.test"])
        let now = Date().addingTimeInterval(1)
        let job = try #require(try await queue.store.claimDueWork(owner: "h:1", now: now, lease: .seconds(60), limit: 10, recipientsPerJob: 50).first)
        #expect(try queue.store.perform(.bounce(reason: nil, notification: Self.notification), on: .queueIDs([queueID])).map(\.outcome) == [.bouncePending])
        // x delivered, y refused by the remote server: the engine's own bounce for y is the only one.
        let outcome = try await queue.store.recordResults([
            RecipientResult(recipientID: job.recipients[0].id, disposition: .delivered, result: .reply("250 2.0.0 Ok", relay: "mx"), attemptedAt: now),
            RecipientResult(recipientID: job.recipients[1].id, disposition: .failed, result: .reply("550 5.1.1 no such user", relay: "mx"), attemptedAt: now,
                            notice: .failure("y@far.test", "550 5.1.1 no such user", relay: "mx")),
        ], messageID: job.messageID, notification: Self.notification)
        #expect(outcome.isRemoved)
        #expect(try queue.message(queueID) == nil)
        #expect(try queue.store.listMessages(matching: QueueFilter()).map(\.queueID) == outcome.notifications.map(\.queueID))
        #expect(outcome.notifications.count == 1)
        #expect(try queue.pendingActionCount() == 0)
    }

    @Test func pendingActionsApplyWhenLeasesAreGivenBackOrRunOut() async throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let atShutdown = try queue.add(to: ["x@far.test"])
        let afterCrash = try queue.add(to: ["y@far.test"])
        let ranOut = try queue.add(to: ["z@far.test"])
        try queue.lease(atShutdown, "x@far.test", owner: "relay.test:10:1")
        try queue.lease(afterCrash, "y@far.test", owner: "relay.test:9:1")
        try queue.lease(ranOut, "z@far.test", owner: "other.test:1:1")
        #expect(try queue.store.perform(.delete, on: .matching(QueueFilter())).map(\.outcome) == [.deletePending, .deletePending, .deletePending])

        // Shutdown gives an unstarted job back.
        try await queue.store.releaseLeases(recipientIDs: [try queue.recipientID(atShutdown, "x@far.test")], now: Date())
        #expect(try queue.message(atShutdown) == nil)
        // A restart releases what the crashed run held.
        #expect(try await queue.store.releaseLeases(ownerPrefix: "relay.test:", now: Date()) == 1)
        #expect(try queue.message(afterCrash) == nil)
        // A lease that ran out with nobody to record it: the next action applies what waited.
        #expect(try queue.message(ranOut) != nil)
        try queue.update(ranOut, "z@far.test", "lease_expires_at = ?", [Date().addingTimeInterval(-1).unixMilliseconds])
        #expect(try queue.store.perform(.hold, on: .queueIDs(["0000000000ZZZZ"])).map(\.outcome) == [.notFound])
        #expect(try queue.message(ranOut) == nil)
    }

    @Test func actionsOnAFilterWorkInBatchesThroughTheWholeQueue() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let count = QueueStore.actionBatchSize * 2 + 7
        try queue.store.pool.write { db in
            for index in 0..<count {
                let message = QueueDatabaseTests.message(recipients: ["r\(index)@far.test"])
                try queue.store.insert(message, in: db)
            }
        }
        var batches: [Int] = []
        let results = try queue.store.perform(.hold, on: .matching(QueueFilter())) { batches.append($0.count) }
        #expect(results.count == count)
        #expect(batches == [QueueStore.actionBatchSize, QueueStore.actionBatchSize, 7])
        #expect(try queue.store.statistics().messages.held == count)
        #expect(try queue.store.perform(.release, on: .matching(QueueFilter(state: .held))).count == count)
        #expect(try queue.store.statistics().messages.held == 0)
        #expect(try queue.store.perform(.delete, on: .matching(QueueFilter(domain: "far.test"))).count == count)
        #expect(try queue.store.messageCount() == 0)
    }

    @Test func bounceCommitsBeforeItHasReadTooMuchText() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let big = "Subject: big\r\n\r\n" + String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", count: 4 << 20 / 64)
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try queue.add(dsnReturn: .full, body: big, spooled: true)) }
        var batches: [Int] = []
        let results = try queue.store.perform(.bounce(reason: nil, notification: Self.notification), on: .queueIDs(ids)) { batches.append($0.count) }
        #expect(results.map(\.outcome) == [.bounced, .bounced, .bounced])
        #expect(batches == [2, 1], "8 MiB of text read, then a commit")
        #expect(try queue.notifications().count == 3)
    }

    // MARK: - list

    /// One message in each state, oldest first.
    static func variedQueue(_ queue: Fixture) throws -> [String: String] {
        let later = Date().addingTimeInterval(3600).unixMilliseconds
        var ids: [String: String] = [:]
        ids["old"] = try queue.add(from: "Old@Sender.test", to: ["o@far.test"], arrivedAgo: 3 * 3600)
        ids["deferred"] = try queue.add(to: ["d@stuck.test"], arrivedAgo: 600)
        try queue.update(ids["deferred"]!, "d@stuck.test", "state = 'deferred', attempts = 2, last_reply = '451 4.4.1 no answer', next_attempt_at = ?", [later])
        ids["held"] = try queue.add(to: ["h@far.test"], arrivedAgo: 500)
        try queue.store.perform(.hold, on: .queueIDs([ids["held"]!]))
        ids["partial"] = try queue.add(to: ["p1@far.test", "p2@stuck.test"], arrivedAgo: 400)
        try queue.update(ids["partial"]!, "p1@far.test", "state = 'delivered', attempts = 1, last_reply = '250 2.0.0 Ok'")
        try queue.update(ids["partial"]!, "p2@stuck.test", "state = 'deferred', attempts = 1, last_reply = '451 4.4.1 no answer', next_attempt_at = ?", [later])
        ids["failed"] = try queue.add(to: ["f1@far.test", "f2@other.test"], arrivedAgo: 300)
        try queue.update(ids["failed"]!, "f1@far.test", "state = 'failed', attempts = 1, last_reply = '550 5.1.1 no'")
        try queue.update(ids["failed"]!, "f2@other.test", "state = 'deferred', attempts = 1, last_reply = '421 4.7.0 busy', next_attempt_at = ?", [later])
        ids["leased"] = try queue.add(to: ["l@far.test"], arrivedAgo: 200)
        try queue.lease(ids["leased"]!, "l@far.test")
        ids["bounce"] = try queue.add(from: nil, to: ["a@b.test"], arrivedAgo: 100)
        ids["new"] = try queue.add(to: ["N@Far.test"])
        return ids
    }

    @Test func listFiltersByStateDomainSenderRecipientAndAge() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let ids = try Self.variedQueue(queue)
        func list(_ filter: QueueFilter) throws -> [String] {
            try queue.store.listMessages(matching: filter).map { message in ids.first { $0.value == message.queueID }!.key }
        }
        #expect(try list(QueueFilter()) == ["old", "deferred", "held", "partial", "failed", "leased", "bounce", "new"])
        #expect(try list(QueueFilter(state: .queued)) == ["old", "held", "leased", "bounce", "new"])
        #expect(try list(QueueFilter(state: .deferred)) == ["deferred", "partial", "failed"])
        #expect(try list(QueueFilter(state: .held)) == ["held"])
        #expect(try list(QueueFilter(state: .failed)) == ["failed"])
        #expect(try list(QueueFilter(domain: "Stuck.TEST")) == ["deferred", "partial"])
        #expect(try list(QueueFilter(state: .failed, domain: "other.test")) == [], "both conditions on one recipient")
        #expect(try list(QueueFilter(sender: "<old@sender.test>")) == ["old"])
        #expect(try list(QueueFilter(sender: "@b.test")) == ["deferred", "held", "partial", "failed", "leased", "new"])
        #expect(try list(QueueFilter(sender: "<>")) == ["bounce"])
        #expect(try list(QueueFilter(recipient: "n@far.test")) == ["new"])
        #expect(try list(QueueFilter(arrivedBefore: Date().addingTimeInterval(-3600))) == ["old"])
        #expect(try list(QueueFilter(domain: "far.test", arrivedBefore: Date().addingTimeInterval(-450))) == ["old", "held"])

        let leased = try #require(try queue.message(ids["leased"]!))
        #expect(leased.recipients[0].isInDelivery)
    }

    @Test func listPagesContinueAfterTheLastQueueIDEvenWhenItHasGone() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        var all: [String] = []
        for index in 0..<25 {
            all.append(try queue.add(to: ["r\(index)@far.test"], arrivedAgo: TimeInterval(100 - index)))
        }
        var pages: [[String]] = []
        var after: String?
        repeat {
            let page = try queue.store.listMessages(matching: QueueFilter(), after: after, limit: 10).map(\.queueID)
            if !page.isEmpty { pages.append(page) }
            after = page.count == 10 ? page.last : nil
        } while after != nil
        #expect(pages.map(\.count) == [10, 10, 5])
        #expect(pages.flatMap { $0 } == all)

        // The last message of a page is delivered before the next page is asked for: nothing is skipped.
        try queue.store.perform(.delete, on: .queueIDs([all[9]]))
        let next = try queue.store.listMessages(matching: QueueFilter(), after: all[9], limit: 10).map(\.queueID)
        #expect(next == Array(all[10..<20]))
        #expect(try queue.store.listMessages(matching: QueueFilter(), limit: 0).isEmpty)
    }

    @Test func queueIDsKnowWhenTheyWereMade() throws {
        let date = Date(timeIntervalSince1970: 1_700_000_000.123456)
        let made = try #require(QueueID.date(of: QueueID.make(at: date)))
        #expect(abs(made.timeIntervalSince(date)) < 0.000_01)
        #expect(QueueID.date(of: "not an id") == nil)
    }

    // MARK: - show

    @Test func storedHeadersAreTheTraceHeadersAndTheHeaderSection() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let body = "Subject: s\r\nFrom: a@b.test\r\n\r\nbody line\r\n"
        for spooled in [false, true] {
            let queueID = try queue.add(body: body, spooled: spooled)
            let headers = String(decoding: try #require(try queue.store.storedHeaders(queueID: queueID)), as: UTF8.self)
            #expect(headers == "Received: from client\r\nSubject: s\r\nFrom: a@b.test\r\n\r\n")
        }
        #expect(try queue.store.storedHeaders(queueID: "0000000000ZZZZ") == nil)
    }

    /// A notification returns, and reads, only what it shows: the header section for RET=HDRS, and for
    /// RET=FULL over `fullReturnLimit`; the whole text for RET=FULL within it.
    @Test(arguments: [false, true])
    func notificationsReadOnlyWhatTheyReturn(spooled: Bool) throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let body = "Subject: s\r\n\r\nbody line\r\n"
        let headers = "Received: from client\r\nSubject: s\r\n\r\n"
        func original(_ queueID: String, size: Int? = nil) throws -> (String, Bool) {
            try queue.store.pool.write { db in
                if let size { try db.execute(sql: "UPDATE message SET size = ? WHERE queue_id = ?", arguments: [size, queueID]) }
                let message = try #require(try Row.fetchOne(db, sql: "SELECT * FROM message WHERE queue_id = ?", arguments: [queueID]))
                let (text, isWhole) = try queue.store.originalText(of: message, in: db)
                return (String(buffer: text), isWhole)
            }
        }
        let headersOnly = try queue.add(dsnReturn: .headers, body: body, spooled: spooled)
        #expect(try original(headersOnly) == (headers, false))
        let full = try queue.add(dsnReturn: .full, body: body, spooled: spooled)
        #expect(try original(full) == (headers + "body line\r\n", true))
        let large = try queue.add(dsnReturn: .full, body: body, spooled: spooled)
        #expect(try original(large, size: SenderNotification.fullReturnLimit + 1) == (headers, false))
    }

    // MARK: - stats

    @Test func statisticsCountByStateAndNameTheTopProblems() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let ids = try Self.variedQueue(queue)
        try queue.lease(ids["new"]!, "N@Far.test", for: -1)  // a lease that ran out is not "in delivery"
        let statistics = try queue.store.statistics(top: 2)
        #expect(statistics.messages == .init(total: 8, queued: 4, deferred: 3, held: 1))
        #expect(statistics.recipients == .init(queued: 5, deferred: 3, delivered: 1, failed: 1, inDelivery: 1))
        #expect(statistics.topDeferredDomains == [.init(domain: "stuck.test", recipients: 2), .init(domain: "other.test", recipients: 1)])
        #expect(statistics.topDeferredErrors == [
            .init(lastReply: "451 4.4.1 no answer", recipients: 2), .init(lastReply: "421 4.7.0 busy", recipients: 1),
        ])
        #expect(statistics.oldestMessage?.queueID == ids["old"])
        #expect((3 * 3600 - 5...3 * 3600 + 5).contains(statistics.oldestMessage?.ageSeconds ?? 0))
        let total = try queue.store.listMessages(matching: QueueFilter()).map(\.size).reduce(0, +)
        #expect(statistics.totalBytes == total)
        #expect(statistics.pendingActions == 0)

        let empty = try Fixture()
        defer { empty.remove() }
        let none = try empty.store.statistics()
        #expect(none.oldestMessage == nil && none.totalBytes == 0 && none.messages.total == 0)
    }

    // MARK: - JSON shapes

    @Test func jsonShapesHaveEveryKey() throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        func keys(_ value: some Encodable) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: try encoder.encode(value)) as! [String: Any]
        }
        let result = try keys(QueueActionResult(queueID: "X", outcome: .deletePending))
        #expect(Set(result.keys) == ["queue_id", "result", "recipients", "in_delivery", "notification", "removed"])
        #expect(result["result"] as? String == "delete_pending")
        #expect(result["notification"] is NSNull)

        let queue = try Fixture()
        defer { queue.remove() }
        let statistics = try keys(try queue.store.statistics())
        #expect(Set(statistics.keys) == ["messages", "recipients", "top_deferred_domains", "top_deferred_errors", "oldest_message", "total_bytes", "pending_actions"])
        #expect(statistics["oldest_message"] is NSNull)
        #expect(Set((statistics["messages"] as! [String: Any]).keys) == ["total", "queued", "deferred", "held"])
        #expect(Set((statistics["recipients"] as! [String: Any]).keys) == ["queued", "deferred", "delivered", "failed", "in_delivery"])

        let queueID = try queue.add()
        let message = try #require(try queue.message(queueID))
        let recipient = try #require((try keys(message)["recipients"] as? [[String: Any]])?.first)
        #expect(recipient["in_delivery"] as? Bool == false)
        #expect(recipient["pending_action"] is NSNull)
    }

    // MARK: - Query plans

    static func plan(_ store: QueueStore, _ sql: String, _ arguments: StatementArguments = []) throws -> [String] {
        try store.pool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }
        }
    }

    @Test func listPagesAreReadInIndexOrderWithoutSorting() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        for filter in [QueueFilter(), QueueFilter(domain: "far.test"), QueueFilter(state: .deferred), QueueFilter(sender: "a@b.test"),
                       QueueFilter(arrivedBefore: Date())] {
            let (condition, arguments) = filter.messageCondition
            let plan = try Self.plan(queue.store, """
                SELECT m.* FROM message m WHERE \(condition) AND (m.arrived_at, m.id) > (?, ?) ORDER BY m.arrived_at, m.id LIMIT 1000
                """, arguments + [0, 0])
            #expect(plan.contains { $0.contains("USING INDEX message_arrival") }, "\(filter): \(plan)")
            #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(filter): \(plan)")
            if filter.selectsRecipients {
                #expect(plan.contains { $0.contains("USING INDEX recipient_message (message_id=?)") }, "\(plan)")
            }
        }
        let (condition, arguments) = QueueFilter(state: .held).messageCondition
        let held = try Self.plan(queue.store, "SELECT m.* FROM message m WHERE \(condition) ORDER BY m.arrived_at, m.id LIMIT 1000", arguments)
        #expect(held.contains { $0.contains("USING INDEX message_held") }, "\(held)")
        #expect(!held.contains { $0.contains("TEMP B-TREE") }, "\(held)")

        // Few matching recipients: found through a recipient index, their messages by row id, then sorted.
        for filter in [QueueFilter(domain: "rare.test"), QueueFilter(recipient: "someone@rare.test"), QueueFilter(state: .failed)] {
            let (condition, arguments) = filter.messageCondition(recipientsFirst: true)
            let plan = try Self.plan(queue.store, """
                SELECT m.* FROM message m WHERE \(condition) AND (m.arrived_at, m.id) > (?, ?) ORDER BY m.arrived_at, m.id LIMIT 1000
                """, arguments + [0, 0])
            #expect(plan.contains { $0.contains("SEARCH m USING INTEGER PRIMARY KEY (rowid=?)") }, "\(filter): \(plan)")
            #expect(plan.contains { $0.contains("USING INDEX recipient_domain (domain=?)") || $0.contains("recipient_state (state=?)") },
                    "\(filter): \(plan)")
            #expect(!plan.contains { $0.contains("SCAN") }, "\(filter): \(plan)")
        }
    }

    @Test func aSelectiveRecipientFilterIsLookedUpAndADenseOneReadInOrder() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        for index in 0..<5 { try queue.add(to: ["u\(index)@dense.test"]) }
        try queue.add(to: ["u@rare.test"])
        try queue.store.pool.read { db in
            let dense = try QueueStore.messageCondition(for: QueueFilter(domain: "dense.test"), in: db, selectiveCount: 3)
            #expect(dense.sql.contains("EXISTS"))
            let rare = try QueueStore.messageCondition(for: QueueFilter(domain: "rare.test"), in: db, selectiveCount: 3)
            #expect(rare.sql.contains("m.id IN (SELECT"))
            let none = try QueueStore.messageCondition(for: QueueFilter(sender: "a@b.test"), in: db, selectiveCount: 3)
            #expect(!none.sql.contains("recipient"))
        }
        // Both forms list the same messages.
        #expect(try queue.store.listMessages(matching: QueueFilter(domain: "dense.test")).count == 5)
        #expect(try queue.store.listMessages(matching: QueueFilter(domain: "rare.test")).count == 1)
    }

    @Test func statisticsReadIndexesRatherThanTheQueue() throws {
        let queue = try Fixture()
        defer { queue.remove() }
        let byState = try Self.plan(queue.store, "SELECT state, count(*) AS n FROM recipient GROUP BY state")
        #expect(byState.contains { $0.contains("USING COVERING INDEX recipient_state") }, "\(byState)")
        #expect(!byState.contains { $0.contains("TEMP B-TREE") }, "\(byState)")
        let domains = try Self.plan(queue.store, "SELECT domain, count(*) AS n FROM recipient WHERE state = 'deferred' GROUP BY domain ORDER BY n DESC, domain LIMIT 10")
        #expect(domains.contains { $0.contains("USING COVERING INDEX recipient_state (state=?)") }, "\(domains)")
        #expect(!domains.contains { $0.contains("TEMP B-TREE FOR GROUP BY") }, "\(domains)")
        let errors = try Self.plan(queue.store, "SELECT last_reply, count(*) FROM recipient WHERE state = 'deferred' GROUP BY last_reply")
        #expect(errors.contains { $0.contains("USING INDEX recipient_state (state=?)") }, "\(errors)")
        let deferredMessages = try Self.plan(queue.store, "SELECT count(DISTINCT message_id) FROM recipient WHERE state = 'deferred'")
        #expect(deferredMessages.contains { $0.contains("USING COVERING INDEX recipient_state (state=?)") }, "\(deferredMessages)")
        let inDelivery = try Self.plan(queue.store, """
            SELECT count(*) FROM recipient WHERE lease_owner IS NOT NULL AND lease_expires_at > 0
            """)
        #expect(inDelivery.contains { $0.contains("USING INDEX recipient_leased (lease_expires_at>?)") }, "\(inDelivery)")
        let held = try Self.plan(queue.store, "SELECT count(*) FROM message WHERE is_held = 1")
        #expect(held.contains { $0.contains("message_held") }, "\(held)")
        let oldest = try Self.plan(queue.store, "SELECT queue_id, arrived_at FROM message ORDER BY arrived_at, id LIMIT 1")
        #expect(oldest.contains { $0.contains("USING INDEX message_arrival") } && !oldest.contains { $0.contains("TEMP B-TREE") }, "\(oldest)")
        let pending = try Self.plan(queue.store, "SELECT * FROM pending_action WHERE recipient_id IN (1, 2)")
        #expect(pending.contains { $0.contains("INTEGER PRIMARY KEY") }, "\(pending)")
    }
}

extension QueueStore {
    /// The tests' actions, by an operator named `tester`.
    @discardableResult
    func perform(
        _ action: QueueAction, on selection: QueueSelection, report: ([QueueActionResult]) throws -> Void = { _ in }
    ) throws -> [QueueActionResult] {
        try perform(action, on: selection, requestedBy: ActionRequest(operatorName: "tester"), report: report)
    }
}
