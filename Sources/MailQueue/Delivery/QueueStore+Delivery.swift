import Foundation
import GRDB
import NIOCore
import SMTPProtocol

/// The queue at work: claiming due recipients under a lease, writing results back, and removing finished
/// messages. A lease is an owner and an expiry; claiming also moves `next_attempt_at` to the expiry, so the
/// due-work index skips leased rows and a crashed worker's recipients fall due again by themselves.
extension QueueStore {
    /// Claims up to `limit` due recipients in one short transaction and groups them into jobs: one per
    /// message and domain, at most `recipientsPerJob` recipients each.
    public func claimDueWork(owner: String, now: Date, lease: Duration, limit: Int, recipientsPerJob: Int) async throws -> [DeliveryJob] {
        let nowMS = now.unixMilliseconds
        let leaseUntil = now.addingTimeInterval(lease.inSeconds).unixMilliseconds
        return try await pool.write { db in
            let rows = try Row.fetchAll(db.cachedStatement(sql: """
                SELECT r.id, r.message_id, r.address, r.domain, r.orcpt, r.notify, r.attempts
                FROM recipient r INDEXED BY recipient_due JOIN message m ON m.id = r.message_id
                WHERE r.state IN ('queued', 'deferred') AND r.next_attempt_at <= ? AND m.is_held = 0
                ORDER BY r.next_attempt_at
                LIMIT ?
                """), arguments: [nowMS, limit])
            guard !rows.isEmpty else { return [] }
            let claim = try db.cachedStatement(sql: "UPDATE recipient SET lease_owner = ?, lease_expires_at = ?, next_attempt_at = ? WHERE id = ?")
            for row in rows {
                try claim.execute(arguments: [owner, leaseUntil, leaseUntil, row["id"] as Int64])
            }
            // The envelope and the text together: the worker need not read the message again.
            var messages: [Int64: Row] = [:]
            let messageStatement = try db.cachedStatement(sql: """
                SELECT m.*, c.trace_headers, c.body FROM message m JOIN message_content c ON c.message_id = m.id WHERE m.id = ?
                """)
            for row in rows {
                let id: Int64 = row["message_id"]
                if messages[id] == nil { messages[id] = try Row.fetchOne(messageStatement, arguments: [id]) }
            }
            var jobs: [DeliveryJob] = []
            var index: [String: Int] = [:]
            for row in rows {
                let messageID: Int64 = row["message_id"]
                let domain: String = row["domain"]
                guard let message = messages[messageID] else { continue }
                let recipient = DeliveryJob.Recipient(
                    id: row["id"], address: row["address"], originalRecipient: row["orcpt"],
                    notify: (row["notify"] as String?).flatMap { RecipientParameters.Notify(keyword: Substring($0)) },
                    attempts: row["attempts"]
                )
                let key = "\(messageID) \(domain)"
                if let position = index[key], jobs[position].recipients.count < recipientsPerJob {
                    jobs[position].recipients.append(recipient)
                    continue
                }
                index[key] = jobs.count
                jobs.append(self.job(message: message, domain: domain, recipients: [recipient]))
            }
            return jobs
        }
    }

    private func job(message: Row, domain: String, recipients: [DeliveryJob.Recipient]) -> DeliveryJob {
        var parameters = MailParameters()
        parameters.body = (message["body_type"] as String?).flatMap(MailParameters.BodyType.init(rawValue:))
        parameters.isSMTPUTF8 = message["is_smtputf8"]
        parameters.dsnReturn = (message["dsn_ret"] as String?).flatMap(MailParameters.Return.init(rawValue:))
        parameters.dsnEnvelopeID = message["dsn_envid"]
        return DeliveryJob(
            messageID: message["id"], queueID: message["queue_id"], reversePath: message["return_path"],
            parameters: parameters, size: message["size"],
            arrivedAt: Date(unixMilliseconds: message["arrived_at"]), expiresAt: Date(unixMilliseconds: message["expires_at"]),
            delayWarnedAt: (message["delay_warned_at"] as Int64?).map(Date.init(unixMilliseconds:)),
            spoolFile: message["spool_file"], domain: domain, recipients: recipients, content: content(of: message)
        )
    }

    /// The text from a row with `trace_headers`, `body` and `spool_file`.
    private func content(of row: Row) -> StoredContent {
        let trace: Data = row["trace_headers"]
        if let fileName: String = row["spool_file"] {
            return .spooled(traceHeaders: ByteBuffer(bytes: trace), path: spoolPath(fileName))
        }
        var buffer = ByteBuffer()
        let body: Data? = row["body"]
        buffer.reserveCapacity(trace.count + (body?.count ?? 0))
        buffer.writeBytes(trace)
        if let body { buffer.writeBytes(body) }
        return .inline(buffer)
    }

    /// What one attempt at one job wrote back: its recipients' results, with what the sender is to be told
    /// of them, and the delay warning it sent, if any.
    public struct JobRecord: Sendable {
        public var results: [RecipientResult]
        public var messageID: Int64
        /// The message's queue id, when known: the record is dropped if the row `messageID` is no longer that
        /// message. SQLite gives the row id of a deleted last row to the next insert, so a job whose lease ran
        /// out and whose message an operator deleted meanwhile must not write over (or delete) a new message.
        public var queueID: String?
        /// How the notification for the results' notices is made (this relay's name, its lifetime); needed
        /// when a result has a notice.
        public var notification: SenderNotification?
        public var markDelayWarned: Date?
        /// When the results were found: the time the record's queue changes are dated by.
        public var recordedAt: Date

        public init(results: [RecipientResult], messageID: Int64, queueID: String? = nil, notification: SenderNotification? = nil,
                    markDelayWarned: Date? = nil, recordedAt: Date = Date()) {
            precondition(notification != nil || results.allSatisfy { $0.notice == nil }, "a notice needs a SenderNotification")
            self.results = results
            self.messageID = messageID
            self.queueID = queueID
            self.notification = notification
            self.markDelayWarned = markDelayWarned
            self.recordedAt = recordedAt
        }
    }

    /// Writes one job's results, the notifications they complete, and removes the message once every
    /// recipient is final — all in one transaction, so a crash leaves either the old state (and the lease
    /// runs out) or the new one.
    @discardableResult
    public func recordResults(
        _ results: [RecipientResult], messageID: Int64, notification: SenderNotification? = nil, markDelayWarned: Date? = nil
    ) async throws -> RecordOutcome {
        try await recordResults([JobRecord(results: results, messageID: messageID, notification: notification, markDelayWarned: markDelayWarned)])[0]
    }

    /// What writing one job's record did to its message.
    public struct RecordOutcome: Sendable {
        public var isRemoved: Bool
        /// The notifications to the sender that this record completed (see ``sendPendingNotices(messageID:now:in:)``).
        public var notifications: [MadeNotification] = []
        /// The removed message's spool file, to delete once the transaction has committed.
        var spoolFile: String?
    }

    /// Writes many jobs' records in one transaction. Returns, per record, what it did to its message.
    public func recordResults(_ records: [JobRecord]) async throws -> [RecordOutcome] {
        let outcomes = try await pool.write { db in try self.recordResults(records, in: db) }
        removeSpoolFiles(of: outcomes)
        return outcomes
    }

    /// Writes many jobs' records inside the caller's transaction (the group commit). Call
    /// ``removeSpoolFiles(of:)`` after the commit.
    ///
    /// A result with a notice is kept as a pending notice in the same transaction. The message's
    /// notification is made from all of its pending notices when this record leaves none of its other
    /// recipients in delivery (no other job of the message is in flight for this round), or settles its
    /// last open recipient: one notification per message for the results found together (RFC 3464 §2),
    /// whichever domains they were at.
    public func recordResults(_ records: [JobRecord], in db: Database) throws -> [RecordOutcome] {
        guard !records.isEmpty else { return [] }
        // An operator's delete or bounce waiting for an attempt is rare: one look per batch.
        let hasPendingActions = try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM pending_action)")) ?? false
        return try records.map { record in
            try self.record(record, hasPendingActions: hasPendingActions, now: record.recordedAt, in: db)
        }
    }

    /// Deletes the spool files of messages that a committed ``recordResults(_:in:)`` removed.
    public func removeSpoolFiles(of outcomes: [RecordOutcome]) {
        removeSpoolFiles(outcomes.compactMap(\.spoolFile))
    }

    private func record(_ record: JobRecord, hasPendingActions: Bool, now: Date, in db: Database) throws -> RecordOutcome {
        if let queueID = record.queueID {
            let isSameMessage = try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM message WHERE id = ? AND queue_id = ?)"),
                arguments: [record.messageID, queueID]) ?? false
            // The message left the queue while this attempt ran (an operator deleted it after its lease ran
            // out): nothing of it is left to record, and its row id may already name another message.
            guard isSameMessage else { return RecordOutcome(isRemoved: false) }
        }
        let isFinal = record.results.allSatisfy { if case .deferred = $0.disposition { false } else { true } }
        let hasNotices = record.results.contains { $0.notice != nil }
        let isQuiet = !hasPendingActions && !hasNotices
        if isFinal, isQuiet, try !hasPendingNotices(messageID: record.messageID, in: db) {
            // The common case: this attempt settled every recipient the message still had open. The message
            // goes at once (its recipients with it) rather than after one update per recipient.
            let open = try Int64.fetchSet(
                db.cachedStatement(sql: "SELECT id FROM recipient WHERE message_id = ? AND state IN ('queued', 'deferred')"),
                arguments: [record.messageID])
            if open.isSubset(of: record.results.map(\.recipientID)) {
                return RecordOutcome(isRemoved: true, spoolFile: try removeMessage(record.messageID, in: db))
            }
        }
        try write(record.results, in: db)
        if let notification = record.notification {
            try keepNotices(of: record.results, messageID: record.messageID, notification: notification, now: now, in: db)
        }
        if hasPendingActions {
            // An operator's delete or bounce that waited for this attempt (see `perform(_:on:now:report:)`).
            try applyPendingActions(recipientIDs: record.results.map(\.recipientID), now: now, in: db)
        }
        if let markDelayWarned = record.markDelayWarned {
            try db.cachedStatement(sql: "UPDATE message SET delay_warned_at = ? WHERE id = ?")
                .execute(arguments: [markDelayWarned.unixMilliseconds, record.messageID])
        }
        let pending = try Int.fetchOne(
            db.cachedStatement(sql: "SELECT count(*) FROM recipient WHERE message_id = ? AND state IN ('queued', 'deferred')"),
            arguments: [record.messageID]) ?? 0
        var notifications: [MadeNotification] = []
        // The round is over for the message when none of its other jobs is in flight: its notices go now.
        if try hasNotices || hasPendingNotices(messageID: record.messageID, in: db),
           try pending == 0 || !hasRecipientsInDelivery(messageID: record.messageID, now: now, in: db) {
            notifications = try sendPendingNotices(messageID: record.messageID, now: now, in: db)
        }
        guard pending == 0 else { return RecordOutcome(isRemoved: false, notifications: notifications) }
        return RecordOutcome(isRemoved: true, notifications: notifications, spoolFile: try removeMessage(record.messageID, in: db))
    }

    /// Each recipient's new state and last result: a reply with its relay, or a local error with neither.
    private func write(_ results: [RecipientResult], in db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            UPDATE recipient SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_attempt_at = ?,
                last_reply = ?, last_relay = ?, last_error = ?, lease_owner = NULL, lease_expires_at = NULL
            WHERE id = ?
            """)
        for result in results {
            let state: String
            var nextAttempt = result.attemptedAt.unixMilliseconds
            switch result.disposition {
            case .delivered: state = "delivered"
            case .failed: state = "failed"
            case .deferred(let next):
                state = "deferred"
                nextAttempt = next.unixMilliseconds
            }
            var reply: String?, relay: String?, error: String?
            switch result.result {
            case .reply(let text, let from): (reply, relay) = ("\(text)", from)
            case .localError(let local): error = local.description
            }
            try statement.execute(arguments: [state, nextAttempt, result.attemptedAt.unixMilliseconds, reply, relay, error, result.recipientID])
        }
    }

    /// Deletes a message with its text and recipients; returns its spool file's name, for removal after the commit.
    private func removeMessage(_ messageID: Int64, in db: Database) throws -> String? {
        let spoolFile = try String.fetchOne(db.cachedStatement(sql: "SELECT spool_file FROM message WHERE id = ?"), arguments: [messageID])
        try db.cachedStatement(sql: "DELETE FROM message WHERE id = ?").execute(arguments: [messageID])
        return spoolFile
    }

    /// Gives claimed recipients back without an attempt: due again now. An operator's delete or bounce
    /// that waited for them is applied.
    public func releaseLeases(recipientIDs: [Int64], now: Date) async throws {
        guard !recipientIDs.isEmpty else { return }
        let spoolFiles = try await pool.write { db -> [String] in
            let statement = try db.cachedStatement(sql: "UPDATE recipient SET lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = ? WHERE id = ?")
            for id in recipientIDs {
                try statement.execute(arguments: [now.unixMilliseconds, id])
            }
            let messages = try self.applyPendingActions(recipientIDs: recipientIDs, now: now, in: db)
            return try messages.compactMap { try self.removeIfFinished(messageID: $0, in: db).spoolFile }
        }
        removeSpoolFiles(spoolFiles)
    }

    /// At start-up: the leases that earlier runs on this host held are released, so that their recipients
    /// are retried at once rather than when the leases run out; an operator's delete or bounce that waited
    /// for them is applied. Leases of `currentOwner` (fresh mail handed over already) are kept. Only the
    /// few leased rows are read (the partial index `recipient_leased`), however deep the queue.
    public func releaseLeases(ownerPrefix: String, except currentOwner: String = "", now: Date) async throws -> Int {
        let (released, spoolFiles) = try await pool.write { db -> (Int, [String]) in
            try db.execute(sql: """
                UPDATE recipient SET lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = ?
                WHERE id IN (SELECT id FROM recipient INDEXED BY recipient_leased
                             WHERE lease_owner IS NOT NULL AND lease_owner LIKE ? ESCAPE '\\' AND lease_owner != ?)
                """, arguments: [now.unixMilliseconds, ownerPrefix.replacingOccurrences(of: "%", with: "\\%") + "%", currentOwner])
            let released = db.changesCount
            let messages = try self.applyPendingActions(recipientIDs: nil, now: now, in: db)
            return (released, try messages.compactMap { try self.removeIfFinished(messageID: $0, in: db).spoolFile })
        }
        removeSpoolFiles(spoolFiles)
        return released
    }

    /// When the next recipient falls due, for the scheduler's sleep.
    public func nextDueTime() async throws -> Date? {
        try await pool.read { db in
            // In index order, stopping at the first row: `min()` over a join would read the whole index.
            try Int64.fetchOne(db.cachedStatement(sql: """
                SELECT r.next_attempt_at FROM recipient r INDEXED BY recipient_due JOIN message m ON m.id = r.message_id
                WHERE r.state IN ('queued', 'deferred') AND m.is_held = 0
                ORDER BY r.next_attempt_at LIMIT 1
                """)).map(Date.init(unixMilliseconds:))
        }
    }
}
