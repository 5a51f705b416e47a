import Foundation
import GRDB
import NIOCore
import SMTPProtocol

/// The operator's actions on the queue: `petrel queue hold|release|retry|delete|bounce`.
extension QueueStore {
    /// How many messages one write transaction acts on: few enough that the server's own commits never
    /// wait long behind it.
    static let actionBatchSize = 100
    /// How much message text one `bounce` transaction reads for its notifications before it commits and
    /// the next one goes on: 8 MiB.
    static let actionContentBudget = 8 << 20

    /// Performs `action` on the selected messages and returns what it did to each, in queue order (and
    /// gives each transaction's results to `report` as soon as it has committed).
    ///
    /// What each action does:
    /// - `hold`: the message is not claimed for delivery until released. Expiry is only decided after an
    ///   attempt, so a held message does not expire either.
    /// - `release`: off hold, and its pending recipients are due now.
    /// - `retry`: the pending recipients are due now (a message on hold is left alone: release it).
    /// - `delete`: the recipients are removed, and the message with them once none is left to deliver. No
    ///   notification goes to the sender.
    /// - `bounce`: every pending recipient fails now with `550 5.0.0` and the operator's reason, and one
    ///   bounce goes to the sender (never for a message with the null reverse path, never for a recipient
    ///   that asked for `NOTIFY=NEVER`).
    ///
    /// With IDs, or a filter on messages only, every recipient of a message is acted on; with a filter
    /// on recipients (``QueueFilter/selectsRecipients``), `retry`, `delete` and `bounce` act on the
    /// matching recipients only.
    ///
    /// **Safe while the server runs.** The messages a filter selects are looked for in reads, which never
    /// block the server; each batch of messages is then one short write transaction, ordered with
    /// the delivery engine's claims and results. A recipient that is not being delivered (no lease, or a
    /// lease that has run out) is acted on at once. A recipient being delivered at that moment — leased:
    /// `lease_owner` set and `lease_expires_at` still ahead — is never interrupted:
    /// - `retry` leaves it alone: it is being tried.
    /// - `hold` lets that attempt go on (it may deliver) and starts no other.
    /// - `delete` and `bounce` are written to `pending_action`; when the attempt ends, ``recordResults(_:messageID:notifications:markDelayWarned:)``
    ///   applies them in the same transaction as the attempt's results, unless the attempt delivered the
    ///   recipient (it stays delivered) or failed it (the engine has bounced it already). A lease given
    ///   back without an attempt (``releaseLeases(recipientIDs:now:)`` at shutdown,
    ///   ``releaseLeases(ownerPrefix:now:)`` at start after a crash) applies them too, as does the next
    ///   action when a lease has run out with nobody to record it.
    ///
    /// So a recipient is delivered once or acted on, never both, and never lost.
    ///
    /// **Audited.** Each message acted on gets an entry in `operator_audit`, in the same transaction, naming
    /// `request`'s operator and reason; the server logs it (``logOperatorAudit(_:)``). A `delete` or `bounce`
    /// that waits for an attempt is logged once that attempt has ended, with the recipients it reached.
    @discardableResult
    public func perform(
        _ action: QueueAction, on selection: QueueSelection, requestedBy request: ActionRequest, now: Date = Date(),
        report: ([QueueActionResult]) throws -> Void = { _ in }
    ) throws -> [QueueActionResult] {
        // First what leases that ran out left waiting.
        let swept = try pool.write { db -> [String] in
            let messages = try self.applyPendingActions(recipientIDs: nil, now: now, in: db)
            return try messages.compactMap { try self.removeIfFinished(messageID: $0, in: db).spoolFile }
        }
        removeSpoolFiles(swept)

        var all: [QueueActionResult] = []
        switch selection {
        case .queueIDs(let queueIDs):
            var seen = Set<String>()
            let unique = queueIDs.map { $0.uppercased() }.filter { seen.insert($0).inserted }
            var next = 0
            while next < unique.count {
                let (results, spoolFiles, taken) = try pool.write { db -> ([QueueActionResult], [String], Int) in
                    var batch = Batch(action: action)
                    for queueID in unique[next...] where !batch.isFull {
                        guard let message = try Row.fetchOne(db, sql: "SELECT * FROM message WHERE queue_id = ?", arguments: [queueID]) else {
                            batch.results.append(QueueActionResult(queueID: queueID, outcome: .notFound))
                            continue
                        }
                        try batch.add(self.act(action, on: message, scope: nil, request: request, now: now, in: db), message: message)
                    }
                    return (batch.results, batch.spoolFiles, batch.results.count)
                }
                removeSpoolFiles(spoolFiles)
                try report(results)
                all += results
                next += taken
            }
        case .matching(let filter):
            // The matching messages are found a page at a time in a read, which never blocks the server
            // however much of the queue it reads; each page is then acted on in short write transactions
            // that check the filter again, since the queue may have changed in between.
            let (recheck, recheckArguments) = filter.messageCondition
            let scope = action.actsOnRecipients ? filter.recipientCondition : nil
            var cursor: ListCursor?
            var isLastPage = false
            while !isLastPage {
                let page = try pool.read { db -> [ListCursor] in
                    let (sql, arguments) = try Self.page(
                        selecting: "m.arrived_at, m.id", matching: filter, after: cursor, limit: Self.actionBatchSize, in: db
                    )
                    return try Row.fetchAll(db, sql: sql, arguments: arguments).map { ListCursor(arrivedAt: $0["arrived_at"], id: $0["id"]) }
                }
                isLastPage = page.count < Self.actionBatchSize
                var rest = page[...]
                while !rest.isEmpty {
                    let (results, spoolFiles, taken) = try pool.write { db -> ([QueueActionResult], [String], Int) in
                        let messages = try Row.fetchAll(db, sql: """
                            SELECT m.* FROM message m WHERE m.id IN (\(databaseQuestionMarks(count: rest.count))) AND \(recheck)
                            """, arguments: StatementArguments(rest.map(\.id)) + recheckArguments)
                        let byID = Dictionary(uniqueKeysWithValues: messages.map { ($0["id"] as Int64, $0) })
                        var batch = Batch(action: action)
                        var taken = 0
                        for key in rest where !batch.isFull {
                            taken += 1
                            guard let message = byID[key.id] else { continue }  // no longer matches
                            try batch.add(self.act(action, on: message, scope: scope, request: request, now: now, in: db), message: message)
                        }
                        return (batch.results, batch.spoolFiles, taken)
                    }
                    removeSpoolFiles(spoolFiles)
                    if !results.isEmpty { try report(results) }
                    all += results
                    cursor = rest[rest.startIndex + taken - 1]
                    rest = rest.dropFirst(taken)
                }
            }
        }
        return all
    }

    /// What one write transaction has done, and whether it has done enough: at most
    /// ``actionBatchSize`` messages, and for `bounce`, which reads each message's text for its
    /// notification, at most ``actionContentBudget`` octets of them.
    private struct Batch {
        let action: QueueAction
        var results: [QueueActionResult] = []
        var spoolFiles: [String] = []
        var octetsRead = 0

        init(action: QueueAction) { self.action = action }

        var isFull: Bool { results.count >= QueueStore.actionBatchSize || octetsRead >= QueueStore.actionContentBudget }

        mutating func add(_ outcome: (QueueActionResult, String?), message: Row) {
            results.append(outcome.0)
            if let spoolFile = outcome.1 { spoolFiles.append(spoolFile) }
            if case .bounce = action, outcome.0.notification != nil { octetsRead += message["size"] as Int }
        }
    }

    /// One message: the action on its pending recipients (those `scope` selects) and its audit entry, inside
    /// the caller's transaction. Returns the result and the spool file to remove once committed.
    private func act(
        _ action: QueueAction, on message: Row, scope: (sql: String, arguments: StatementArguments)?, request: ActionRequest,
        now: Date, in db: Database
    ) throws -> (QueueActionResult, String?) {
        let (result, leased, spoolFile) = try change(action, on: message, scope: scope, now: now, in: db)
        switch result.outcome {
        case .held, .released, .retried, .deleted, .deletePending, .bounced, .bouncePending:
            let auditID = try recordAudit(action, result: result, wholeMessage: scope == nil, request: request, now: now, in: db)
            for recipient in leased {
                try recordHandOver(recipientID: recipient["id"], address: recipient["address"], to: auditID, in: db)
                try recordPendingAction(action, recipientID: recipient["id"], auditID: auditID, now: now, in: db)
            }
        case .alreadyHeld, .notHeld, .onHold, .inDelivery, .nothingPending, .notFound:
            break
        }
        return (result, spoolFile)
    }

    /// What ``act(_:on:scope:request:now:in:)`` does to the queue, but for the pending actions: returns the
    /// result, the leased recipients a `delete` or `bounce` waits for, and the spool file to remove.
    private func change(
        _ action: QueueAction, on message: Row, scope: (sql: String, arguments: StatementArguments)?, now: Date, in db: Database
    ) throws -> (QueueActionResult, leased: [Row], spoolFile: String?) {
        let messageID: Int64 = message["id"]
        let queueID: String = message["queue_id"]
        let isHeld: Bool = message["is_held"]
        let nowMS = now.unixMilliseconds
        var sql = "SELECT r.* FROM recipient r WHERE r.message_id = ? AND r.state IN ('queued', 'deferred')"
        var arguments: StatementArguments = [messageID]
        if let scope {
            sql += " AND " + scope.sql
            arguments += scope.arguments
        }
        sql += " ORDER BY r.id"
        let pending = try Row.fetchAll(db, sql: sql, arguments: arguments)
        let leased = pending.filter { Self.isLeased($0, at: nowMS) }
        let free = pending.filter { !Self.isLeased($0, at: nowMS) }
        let inDelivery = leased.map { $0["address"] as String }
        let freeAddresses = free.map { $0["address"] as String }

        switch action {
        case .hold:
            guard !isHeld else { return (QueueActionResult(queueID: queueID, outcome: .alreadyHeld, inDelivery: inDelivery), [], nil) }
            try db.execute(sql: "UPDATE message SET is_held = 1 WHERE id = ?", arguments: [messageID])
            return (QueueActionResult(queueID: queueID, outcome: .held, inDelivery: inDelivery), [], nil)

        case .release:
            guard isHeld else { return (QueueActionResult(queueID: queueID, outcome: .notHeld, inDelivery: inDelivery), [], nil) }
            try db.execute(sql: "UPDATE message SET is_held = 0 WHERE id = ?", arguments: [messageID])
            try makeDue(free, at: nowMS, in: db)
            return (QueueActionResult(queueID: queueID, outcome: .released, recipients: freeAddresses, inDelivery: inDelivery), [], nil)

        case .retry:
            if isHeld { return (QueueActionResult(queueID: queueID, outcome: .onHold, inDelivery: inDelivery), [], nil) }
            if !free.isEmpty {
                try makeDue(free, at: nowMS, in: db)
                return (QueueActionResult(queueID: queueID, outcome: .retried, recipients: freeAddresses, inDelivery: inDelivery), [], nil)
            }
            return (QueueActionResult(queueID: queueID, outcome: leased.isEmpty ? .nothingPending : .inDelivery, inDelivery: inDelivery), [], nil)

        case .delete:
            let statement = try db.cachedStatement(sql: "DELETE FROM recipient WHERE id = ?")
            for recipient in free {
                try statement.execute(arguments: [recipient["id"] as Int64])
            }
            let removal = try removeIfFinished(messageID: messageID, in: db)
            let outcome: QueueActionResult.Outcome = !free.isEmpty || (removal.isRemoved && scope == nil)
                ? .deleted : leased.isEmpty ? .nothingPending : .deletePending
            return (QueueActionResult(queueID: queueID, outcome: outcome, recipients: freeAddresses, inDelivery: inDelivery, isRemoved: removal.isRemoved),
                    leased, removal.spoolFile)

        case .bounce(let reason, let notification):
            let notice = free.isEmpty ? nil : try bounce(free, of: message, reason: reason, notification: notification, now: now, in: db)
            let removal = try removeIfFinished(messageID: messageID, in: db)
            let outcome: QueueActionResult.Outcome = !free.isEmpty ? .bounced : leased.isEmpty ? .nothingPending : .bouncePending
            return (QueueActionResult(queueID: queueID, outcome: outcome, recipients: freeAddresses, inDelivery: inDelivery,
                                      notification: notice, isRemoved: removal.isRemoved), leased, removal.spoolFile)
        }
    }

    // MARK: - Actions that wait for an attempt to end

    /// Applies the operator's waiting `delete` and `bounce` to those of the recipients (all of them when
    /// `recipientIDs` is `nil`) that are no longer being delivered, inside the caller's transaction. A
    /// recipient the attempt delivered or failed keeps its result and the action is dropped. Returns the
    /// messages it touched, which may now have nothing left to deliver (see ``removeIfFinished(messageID:in:)``).
    @discardableResult
    func applyPendingActions(recipientIDs: [Int64]?, now: Date, in db: Database) throws -> Set<Int64> {
        var rows: [Row] = []
        let select = """
            SELECT r.*, p.action AS pending_action, p.reason AS pending_reason, p.reporting_mta AS pending_reporting_mta,
                   p.notification_lifetime AS pending_lifetime, p.audit_id AS pending_audit_id
            FROM pending_action p JOIN recipient r ON r.id = p.recipient_id
            """
        if let recipientIDs {
            // A chunk at a time: the number of SQL parameters is bounded.
            for start in stride(from: 0, to: recipientIDs.count, by: 500) {
                let chunk = Array(recipientIDs[start..<min(start + 500, recipientIDs.count)])
                rows += try Row.fetchAll(db, sql: "\(select) WHERE p.recipient_id IN (\(databaseQuestionMarks(count: chunk.count)))",
                                         arguments: StatementArguments(chunk))
            }
        } else {
            rows = try Row.fetchAll(db, sql: select)
        }
        guard !rows.isEmpty else { return [] }

        let nowMS = now.unixMilliseconds
        var touched = Set<Int64>()
        struct BounceRequest: Hashable {
            var messageID: Int64
            var reason: String?
            var reportingMTA: String
            var lifetime: Int64
        }
        var bounces: [BounceRequest: [Row]] = [:]
        for row in rows {
            let recipientID: Int64 = row["id"]
            let messageID: Int64 = row["message_id"]
            let state: String = row["state"]
            if state != "queued" && state != "deferred" {
                // Delivered or failed by the attempt: that result stands.
                try db.execute(sql: "DELETE FROM pending_action WHERE recipient_id = ?", arguments: [recipientID])
                continue
            }
            if Self.isLeased(row, at: nowMS) { continue }
            touched.insert(messageID)
            if let auditID: Int64 = row["pending_audit_id"] {
                try recordAudited(recipient: row["address"], auditID: auditID, in: db)
            }
            switch row["pending_action"] as String {
            case "delete":
                try db.execute(sql: "DELETE FROM recipient WHERE id = ?", arguments: [recipientID])
            default:
                let request = BounceRequest(
                    messageID: messageID, reason: row["pending_reason"],
                    reportingMTA: row["pending_reporting_mta"] ?? "localhost", lifetime: row["pending_lifetime"] ?? 5 * 86_400_000
                )
                bounces[request, default: []].append(row)
            }
        }
        for (request, recipients) in bounces.sorted(by: { $0.key.messageID < $1.key.messageID }) {
            guard let message = try Row.fetchOne(db, sql: "SELECT * FROM message WHERE id = ?", arguments: [request.messageID]) else { continue }
            let notification = SenderNotification(reportingMTA: request.reportingMTA, lifetime: TimeInterval(request.lifetime) / 1000)
            try bounce(recipients, of: message, reason: request.reason, notification: notification, now: now, in: db)
            for recipient in recipients {
                try db.execute(sql: "DELETE FROM pending_action WHERE recipient_id = ?", arguments: [recipient["id"] as Int64])
            }
        }
        return touched
    }

    /// A later request for the same recipient replaces an earlier one; the earlier one's audit entry is then
    /// logged with what it had reached.
    private func recordPendingAction(_ action: QueueAction, recipientID: Int64, auditID: Int64, now: Date, in db: Database) throws {
        var reason: String?
        var notification: SenderNotification?
        if case .bounce(let words, let notice) = action {
            reason = words
            notification = notice
        }
        try db.execute(sql: """
            INSERT INTO pending_action (recipient_id, action, reason, reporting_mta, notification_lifetime, requested_at, audit_id)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (recipient_id) DO UPDATE SET action = excluded.action, reason = excluded.reason,
                reporting_mta = excluded.reporting_mta, notification_lifetime = excluded.notification_lifetime,
                requested_at = excluded.requested_at, audit_id = excluded.audit_id
            """, arguments: [
                recipientID, action.name, reason, notification?.reportingMTA,
                notification.map { Int64(($0.lifetime * 1000).rounded()) }, now.unixMilliseconds, auditID,
            ])
    }

    // MARK: - Pieces

    /// Fails the recipients now with the operator's reply (stored as a local result: no server said it) and queues one bounce for those whose NOTIFY
    /// asks for it. Returns the bounce's queue id, `nil` when none is sent (a message with the null reverse
    /// path is never answered).
    @discardableResult
    func bounce(_ recipients: [Row], of message: Row, reason: String?, notification: SenderNotification, now: Date, in db: Database) throws -> String? {
        let reply = Self.operatorBounceReply(reason: reason)
        let statement = try db.cachedStatement(sql: """
            UPDATE recipient SET state = 'failed', last_error = ?, last_reply = NULL, last_relay = NULL, next_attempt_at = ?,
                lease_owner = NULL, lease_expires_at = NULL
            WHERE id = ?
            """)
        for recipient in recipients {
            try statement.execute(arguments: ["\(reply)", now.unixMilliseconds, recipient["id"] as Int64])
        }
        let statuses = recipients.filter { recipient in
            (recipient["notify"] as String?).flatMap { RecipientParameters.Notify(keyword: Substring($0)) }.map { $0.contains(.failure) } ?? true
        }.map { recipient in
            RecipientDeliveryStatus(
                finalRecipient: recipient["address"],
                originalRecipient: recipient["orcpt"],
                action: .failed,
                status: EnhancedStatusCode(5, 0, 0),
                diagnosticCode: "X-Petrel; \(reply)",
                lastAttemptSeconds: (recipient["last_attempt_at"] as Int64?).map { $0 / 1000 }
            )
        }
        let reversePath: String = message["return_path"]
        guard !statuses.isEmpty, !reversePath.isEmpty else { return nil }
        let (original, returnsFullMessage) = try originalText(of: message, in: db)
        guard let notice = notification.make(
            reversePath: reversePath, envelopeID: message["dsn_envid"], returnsFullMessage: returnsFullMessage,
            arrivedAt: Date(unixMilliseconds: message["arrived_at"]), statuses: statuses, original: original, now: now
        ) else { return nil }
        try insert(notice, in: db)
        return notice.queueID
    }

    /// `550 5.0.0 Returned by the postmaster: REASON`, on one line.
    static func operatorBounceReply(reason: String?) -> SMTPReply {
        let words = reason.map(singleLine) ?? ""
        return SMTPReply(550, EnhancedStatusCode(5, 0, 0), words.isEmpty ? "Returned by the postmaster" : "Returned by the postmaster: \(words)")
    }

    /// The stored message (a `message` row) as a notification returns it, and whether that is the whole
    /// message: trace headers, then the whole text for RET=FULL when it is at most
    /// `SenderNotification.fullReturnLimit` (Postfix's bounce_size_limit idea), else only the header
    /// section, read no further than it goes. The notification is stored in a transaction that arrivals
    /// share, so nothing more is read or kept.
    func originalText(of message: Row, in db: Database) throws -> (text: ByteBuffer, isWhole: Bool) {
        let isWhole = (message["dsn_ret"] as String?) == MailParameters.Return.full.rawValue
            && (message["size"] as Int) <= SenderNotification.fullReturnLimit
        guard let row = try Row.fetchOne(db, sql: """
            SELECT c.trace_headers, CASE WHEN ? THEN c.body ELSE substr(c.body, 1, ?) END AS body, m.spool_file
            FROM message m JOIN message_content c ON c.message_id = m.id WHERE m.id = ?
            """, arguments: [isWhole, Self.headerReadLimit, message["id"] as Int64]) else { return (ByteBuffer(), isWhole) }
        var text = ByteBuffer(bytes: row["trace_headers"] as Data)
        if let fileName: String = row["spool_file"] {
            let path = spoolPath(fileName)
            text.writeBytes(isWhole ? try Data(contentsOf: URL(fileURLWithPath: path)) : try Self.readHead(ofSpoolFile: path))
        } else if let body: Data = row["body"] {
            text.writeBytes(body)
        }
        return (isWhole ? text : HeaderSectionScanner.headerSection(of: text), isWhole)
    }

    private func makeDue(_ recipients: [Row], at now: Int64, in db: Database) throws {
        let statement = try db.cachedStatement(sql: "UPDATE recipient SET next_attempt_at = ? WHERE id = ?")
        for recipient in recipients {
            try statement.execute(arguments: [now, recipient["id"] as Int64])
        }
    }

    /// Removes the message when none of its recipients is still to be delivered, as a delivery that ends
    /// does. Returns whether it did, and the spool file to remove once the transaction has committed.
    func removeIfFinished(messageID: Int64, in db: Database) throws -> (isRemoved: Bool, spoolFile: String?) {
        let pending = try Int.fetchOne(db, sql: "SELECT count(*) FROM recipient WHERE message_id = ? AND state IN ('queued', 'deferred')",
                                       arguments: [messageID]) ?? 0
        guard pending == 0, let row = try Row.fetchOne(db, sql: "SELECT spool_file FROM message WHERE id = ?", arguments: [messageID]) else {
            return (false, nil)
        }
        _ = try sendPendingNotices(messageID: messageID, now: Date(), in: db)
        try db.execute(sql: "DELETE FROM message WHERE id = ?", arguments: [messageID])
        return (true, row["spool_file"])
    }

    func removeSpoolFiles(_ names: [String]) {
        for name in names {
            try? FileManager.default.removeItem(atPath: spoolPath(name))
        }
    }

    /// Being delivered right now: leased, and the lease has not run out.
    static func isLeased(_ recipient: Row, at now: Int64) -> Bool {
        (recipient["lease_owner"] as String?) != nil && (recipient["lease_expires_at"] as Int64? ?? 0) > now
    }
}
