import Foundation
import GRDB
import NIOCore
import SMTPProtocol

/// Reading the queue for the operator: `petrel queue list`, `show` and `stats`. Every read is one WAL
/// snapshot: it never waits for the server's writes, nor they for it.
extension QueueStore {
    /// Where a page of `list` starts: after this message, in the order of arrival.
    public struct ListCursor: Sendable, Equatable {
        var arrivedAt: Int64
        var id: Int64
    }

    /// The messages that match `filter`, oldest first, at most `limit`, starting after the message
    /// `after` names (the last queue id of the previous page).
    ///
    /// The messages are read in the order of the `message_arrival` index (arrival time, then row id), and
    /// the page continues from the previous one's last key rather than by an offset, so that each page
    /// costs the same however deep into a large queue it is. When the message `after` names has left the
    /// queue meanwhile, the page starts at the time its id was made: it may repeat a few messages of
    /// the previous page, never skip one.
    public func listMessages(matching filter: QueueFilter, after: String? = nil, limit: Int = 1000, now: Date = Date()) throws -> [QueuedMessage] {
        try pool.read { db in
            var cursor: ListCursor?
            if let after {
                cursor = try Self.cursor(after: after, in: db)
            }
            let (sql, arguments) = try Self.page(selecting: "m.*", matching: filter, after: cursor, limit: max(0, limit), in: db)
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { try QueuedMessage(row: $0, db: db, now: now) }
        }
    }

    /// One keyset page of the messages matching `filter`, in the order of `message_arrival`, after
    /// `cursor`: the query and its arguments. `columns` is a constant column list of `message m`.
    static func page(
        selecting columns: String, matching filter: QueueFilter, after cursor: ListCursor?, limit: Int, in db: Database
    ) throws -> (sql: String, arguments: StatementArguments) {
        let (condition, conditionArguments) = try messageCondition(for: filter, in: db)
        var sql = "SELECT \(columns) FROM message m WHERE \(condition)"
        var arguments = conditionArguments
        if let cursor {
            sql += " AND (m.arrived_at, m.id) > (?, ?)"
            arguments += [cursor.arrivedAt, cursor.id]
        }
        sql += " ORDER BY m.arrived_at, m.id LIMIT ?"
        arguments += [limit]
        return (sql, arguments)
    }

    /// The filter's condition on messages, in the form that reads least: when its recipient conditions
    /// match few recipients (counted through an index, up to ``QueueFilter/selectiveRecipientCount``), those
    /// recipients' messages are looked up and sorted; otherwise the queue is read in order until the page
    /// is full.
    static func messageCondition(
        for filter: QueueFilter, in db: Database, selectiveCount limit: Int = QueueFilter.selectiveRecipientCount
    ) throws -> (sql: String, arguments: StatementArguments) {
        guard let (sql, arguments) = filter.recipientCondition else { return filter.messageCondition }
        let matches = try Int.fetchOne(db, sql: "SELECT count(*) FROM (SELECT 1 FROM recipient r WHERE \(sql) LIMIT ?)",
                                       arguments: arguments + [limit + 1]) ?? 0
        return filter.messageCondition(recipientsFirst: matches <= limit)
    }

    /// The key a page continues from: the message's own, or when it has gone, the time in its id.
    static func cursor(after queueID: String, in db: Database) throws -> ListCursor? {
        let queueID = queueID.uppercased()
        if let row = try Row.fetchOne(db, sql: "SELECT arrived_at, id FROM message WHERE queue_id = ?", arguments: [queueID]) {
            return ListCursor(arrivedAt: row["arrived_at"], id: row["id"])
        }
        // An id is made before its message arrives, so no message after it arrived before its time.
        return QueueID.date(of: queueID).map { ListCursor(arrivedAt: $0.unixMilliseconds - 1, id: Int64.max) }
    }

    /// The header fields of a stored message as it will be delivered: Petrel's trace headers, then the
    /// message's own header section up to and including the empty line that ends it (the whole text when
    /// it has none). A spooled message is read only as far as its header section goes.
    public func storedHeaders(queueID: String) throws -> Data? {
        let row = try pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT c.trace_headers, substr(c.body, 1, ?) AS head, m.spool_file FROM message m
                JOIN message_content c ON c.message_id = m.id WHERE m.queue_id = ?
                """, arguments: [Self.headerReadLimit, queueID])
        }
        guard let row else { return nil }
        var headers: Data = row["trace_headers"]
        let head: Data
        if let fileName: String = row["spool_file"] {
            head = try Self.readHead(ofSpoolFile: spoolPath(fileName))
        } else {
            head = row["head"] ?? Data()
        }
        let section = HeaderSectionScanner.headerSection(of: ByteBuffer(bytes: head))
        headers.append(contentsOf: section.readableBytesView)
        return headers
    }

    /// How much of a message's text is read for its header section: 1 MiB.
    static let headerReadLimit = 1 << 20

    /// The first bytes of a spool file: enough for any header section Petrel shows.
    static func readHead(ofSpoolFile path: String) throws -> Data {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var data = Data()
        var scanner = HeaderSectionScanner()
        while data.count < Self.headerReadLimit, !scanner.isFinished {
            guard let chunk = try handle.read(upToCount: 64 * 1024), !chunk.isEmpty else { break }
            data.append(chunk)
            scanner.scan(ByteBuffer(bytes: chunk))
        }
        return data
    }

    /// The numbers of `petrel queue stats`, from one snapshot. The counts by state, by deferred domain and
    /// of deferred messages are read from the index `recipient_state`, the held count from `message_held`,
    /// the recipients in delivery from `recipient_leased`, the oldest message from `message_arrival`; the
    /// total size is a scan of the (small) envelope rows and the top errors read the deferred recipients.
    public func statistics(now: Date = Date(), top: Int = 10) throws -> QueueStatistics {
        let nowMS = now.unixMilliseconds
        return try pool.read { db in
            let totals = try Row.fetchOne(db, sql: "SELECT count(*) AS messages, coalesce(sum(size), 0) AS bytes FROM message")!
            let held = try Int.fetchOne(db, sql: "SELECT count(*) FROM message WHERE is_held = 1") ?? 0
            // Messages with a deferred recipient, from the index alone, less the held ones among them.
            let deferredMessages = (try Int.fetchOne(db, sql: "SELECT count(DISTINCT message_id) FROM recipient WHERE state = 'deferred'") ?? 0)
                - (try Int.fetchOne(db, sql: """
                    SELECT count(*) FROM message m
                    WHERE m.is_held = 1
                      AND EXISTS (SELECT 1 FROM recipient r INDEXED BY recipient_message WHERE r.message_id = m.id AND r.state = 'deferred')
                    """) ?? 0)
            var byState: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, count(*) AS n FROM recipient GROUP BY state") {
                byState[row["state"]] = row["n"]
            }
            // Only a pending recipient is ever leased: a result clears the lease.
            let inDelivery = try Int.fetchOne(db, sql: """
                SELECT count(*) FROM recipient WHERE lease_owner IS NOT NULL AND lease_expires_at > ?
                """, arguments: [nowMS]) ?? 0
            let domains = try Row.fetchAll(db, sql: """
                SELECT domain, count(*) AS n FROM recipient WHERE state = 'deferred'
                GROUP BY domain ORDER BY n DESC, domain LIMIT ?
                """, arguments: [top]).map { QueueStatistics.DomainCount(domain: $0["domain"], recipients: $0["n"]) }
            // A local error is counted under its own words, marked so that it never reads as a server's reply.
            let errors = try Row.fetchAll(db, sql: """
                SELECT coalesce(last_reply, '(local) ' || last_error) AS last_reply, count(*) AS n FROM recipient
                WHERE state = 'deferred' AND (last_reply IS NOT NULL OR last_error IS NOT NULL)
                GROUP BY 1 ORDER BY n DESC, 1 LIMIT ?
                """, arguments: [top]).map { QueueStatistics.ErrorCount(lastReply: $0["last_reply"], recipients: $0["n"]) }
            let oldest = try Row.fetchOne(db, sql: "SELECT queue_id, arrived_at FROM message ORDER BY arrived_at, id LIMIT 1").map { row in
                let arrivedAt: Int64 = row["arrived_at"]
                return QueueStatistics.Oldest(
                    queueID: row["queue_id"], arrivedAt: Date(unixMilliseconds: arrivedAt),
                    ageSeconds: Int(max(0, nowMS - arrivedAt) / 1000)
                )
            }
            let pendingActions = try Int.fetchOne(db, sql: "SELECT count(*) FROM pending_action") ?? 0
            let total: Int = totals["messages"]
            return QueueStatistics(
                messages: .init(total: total, queued: max(0, total - held - deferredMessages), deferred: deferredMessages, held: held),
                recipients: .init(
                    queued: byState["queued"] ?? 0, deferred: byState["deferred"] ?? 0,
                    delivered: byState["delivered"] ?? 0, failed: byState["failed"] ?? 0, inDelivery: inDelivery
                ),
                topDeferredDomains: domains,
                topDeferredErrors: errors,
                oldestMessage: oldest,
                totalBytes: totals["bytes"],
                pendingActions: pendingActions
            )
        }
    }
}
