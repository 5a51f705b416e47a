import Foundation
import GRDB
import NIOCore
import SMTPProtocol

/// The notifications the delivery engine owes senders (RFC 3464): one per message for the results found
/// together, whichever domains its recipients were at.
///
/// A result the sender must hear of (failed, delayed, relayed) is kept as a `pending_notice` row in the
/// transaction that writes the result. The message's notification is made from all of its rows, in one
/// transaction that inserts it and deletes them, when no other recipient of the message is still in
/// delivery, when its last open recipient settles, or when a row has waited longer than a short bound
/// (a job stuck behind the per-domain limit, a crash): so a crash never loses a notice and never sends
/// one twice.
extension QueueStore {
    /// A notification to a sender made from pending notices: its own queue id, for the log.
    public struct MadeNotification: Sendable, Hashable {
        /// The message it reports on.
        public var reportedQueueID: String
        /// The notification's queue id.
        public var queueID: String
        public var kind: DeliveryStatusNotification.Kind
    }

    func hasPendingNotices(messageID: Int64, in db: Database) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM pending_notice WHERE message_id = ?)"),
                          arguments: [messageID]) ?? false
    }

    /// Whether a recipient of the message is leased and the lease has not run out: another job of it is in flight.
    func hasRecipientsInDelivery(messageID: Int64, now: Date, in db: Database) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: """
            SELECT EXISTS (SELECT 1 FROM recipient INDEXED BY recipient_message
                           WHERE message_id = ? AND lease_owner IS NOT NULL AND lease_expires_at > ?)
            """), arguments: [messageID, now.unixMilliseconds]) ?? false
    }

    /// Keeps the results' notices until the message's notification is made.
    func keepNotices(of results: [RecipientResult], messageID: Int64, notification: SenderNotification, now: Date, in db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO pending_notice (recipient_id, message_id, action, status, remote_mta, diagnostic_code,
                last_attempt_at, will_retry_until, reporting_mta, notification_lifetime, noted_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for result in results {
            guard let notice = result.notice else { continue }
            try statement.execute(arguments: [
                result.recipientID, messageID, notice.action.rawValue, notice.status.description, notice.remoteMTA, notice.diagnosticCode,
                notice.lastAttemptSeconds.map { $0 * 1000 } ?? result.attemptedAt.unixMilliseconds,
                notice.willRetryUntilSeconds.map { $0 * 1000 },
                notification.reportingMTA, Int64((notification.lifetime * 1000).rounded()), now.unixMilliseconds,
            ])
        }
    }

    /// Makes the message's notifications from all its pending notices and deletes them, inside the caller's
    /// transaction: one per kind (failures, delays, relays), each listing every recipient of that kind.
    /// A message with the null reverse path gets none (RFC 5321 §4.5.5: never a bounce of a bounce).
    func sendPendingNotices(messageID: Int64, now: Date, in db: Database) throws -> [MadeNotification] {
        let rows = try Row.fetchAll(db.cachedStatement(sql: """
            SELECT n.*, r.address, r.orcpt FROM pending_notice n JOIN recipient r ON r.id = n.recipient_id
            WHERE n.message_id = ? ORDER BY n.recipient_id
            """), arguments: [messageID])
        guard !rows.isEmpty, let message = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM message WHERE id = ?"), arguments: [messageID])
        else { return [] }
        try db.cachedStatement(sql: "DELETE FROM pending_notice WHERE message_id = ?").execute(arguments: [messageID])
        let reversePath: String = message["return_path"]
        guard !reversePath.isEmpty else { return [] }
        let (original, returnsFullMessage) = try originalText(of: message, in: db)
        var made: [MadeNotification] = []
        let kinds: [(RecipientDeliveryStatus.Action, DeliveryStatusNotification.Kind)] = [(.failed, .failure), (.delayed, .delay), (.relayed, .success)]
        for (action, kind) in kinds {
            let group = rows.filter { $0["action"] == action.rawValue }
            guard let first = group.first else { continue }
            let statuses = group.map { row in
                RecipientDeliveryStatus(
                    finalRecipient: row["address"], originalRecipient: row["orcpt"], action: action,
                    status: EnhancedStatusCode(Substring(row["status"] as String)) ?? EnhancedStatusCode(action == .failed ? 5 : 4, 0, 0),
                    remoteMTA: row["remote_mta"], diagnosticCode: row["diagnostic_code"],
                    lastAttemptSeconds: (row["last_attempt_at"] as Int64) / 1000,
                    willRetryUntilSeconds: (row["will_retry_until"] as Int64?).map { $0 / 1000 }
                )
            }
            let notification = SenderNotification(reportingMTA: first["reporting_mta"], lifetime: TimeInterval(first["notification_lifetime"] as Int64) / 1000)
            guard let notice = notification.make(
                reversePath: reversePath, envelopeID: message["dsn_envid"], returnsFullMessage: returnsFullMessage,
                arrivedAt: Date(unixMilliseconds: message["arrived_at"]), statuses: statuses, original: original, now: now
            ) else { continue }
            try insert(notice, in: db)
            made.append(MadeNotification(reportedQueueID: message["queue_id"], queueID: notice.queueID, kind: kind))
        }
        return made
    }

    /// Makes the notifications that wait for nothing any more: of messages none of whose recipients is in
    /// delivery (the job they waited for ended without a result: a crash, a shutdown, a lease run out), or
    /// noted at `gatheredBefore` or earlier (a job of the message is stuck behind others). The scheduler calls
    /// this while it idles; it reads only the few pending rows and writes only when one is due.
    public func sendDueNotices(now: Date, gatheredBefore: Date) async throws -> [MadeNotification] {
        let select = """
            SELECT DISTINCT n.message_id FROM pending_notice n
            WHERE n.noted_at <= ? OR NOT EXISTS (
                SELECT 1 FROM recipient r INDEXED BY recipient_message
                WHERE r.message_id = n.message_id AND r.lease_owner IS NOT NULL AND r.lease_expires_at > ?)
            """
        let arguments: StatementArguments = [gatheredBefore.unixMilliseconds, now.unixMilliseconds]
        let due = try await pool.read { db in try Int64.fetchAll(db.cachedStatement(sql: select), arguments: arguments) }
        guard !due.isEmpty else { return [] }
        return try await pool.write { db in
            // Once more inside the write: a result may have made them meanwhile.
            try Int64.fetchAll(db.cachedStatement(sql: select), arguments: arguments).flatMap { messageID in
                try self.sendPendingNotices(messageID: messageID, now: now, in: db)
            }
        }
    }
}
