import Foundation
import GRDB
import LogEvents

/// Who asked for an operator's action, and why: what the audit trail says beside what the action did.
public struct ActionRequest: Sendable, Equatable {
    /// The Unix user of the CLI (an API token's name, later).
    public var operatorName: String
    public var reason: String?

    public init(operatorName: String, reason: String? = nil) {
        self.operatorName = operatorName
        self.reason = reason
    }
}

/// One message an operator's action reached, waiting in `operator_audit` for the server to log it: the
/// log's own event, so what the queue keeps is what the log renders.
///
/// The CLI writes the entry in the transaction of the action; the server logs it beside the delivery
/// lines (``QueueStore/logOperatorAudit(_:)``). A `delete` or `bounce` that waits for an attempt under way is
/// logged when that attempt has ended, with the recipients the action reached in the end.
public typealias OperatorAuditEntry = OperatorActionEvent

extension QueueStore {
    /// Records what an action did to one message, inside the action's transaction. Returns the entry's
    /// row id, for the pending actions that finish it later.
    @discardableResult
    func recordAudit(
        _ action: QueueAction, result: QueueActionResult, wholeMessage: Bool, request: ActionRequest, now: Date, in db: Database
    ) throws -> Int64 {
        try db.execute(sql: """
            INSERT INTO operator_audit (queue_id, action, operator, reason, whole_message, recipients, in_delivery, requested_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [
                result.queueID, action.name, request.operatorName, request.reason.map(Self.singleLine), wholeMessage,
                result.recipients.joined(separator: "\n"), action.waitsForAttempts ? result.inDelivery.joined(separator: "\n") : "",
                now.unixMilliseconds,
            ])
        return db.lastInsertedRowID
    }

    /// A pending action has reached `address`: its audit entry names it.
    func recordAudited(recipient address: String, auditID: Int64, in db: Database) throws {
        try append(address, to: "recipients", auditID: auditID, in: db)
    }

    /// A later request takes over the pending action on `recipientID`: the earlier one's entry says so.
    func recordHandOver(recipientID: Int64, address: String, to auditID: Int64, in db: Database) throws {
        guard let earlier = try Int64.fetchOne(db, sql: "SELECT audit_id FROM pending_action WHERE recipient_id = ?", arguments: [recipientID]),
              earlier != auditID else { return }
        try append(address, to: "handed_over", auditID: earlier, in: db)
    }

    private func append(_ address: String, to column: String, auditID: Int64, in db: Database) throws {
        try db.execute(sql: """
            UPDATE operator_audit SET \(column) = CASE \(column) WHEN '' THEN ? ELSE \(column) || char(10) || ? END WHERE id = ?
            """, arguments: [address, address, auditID])
    }

    /// Gives the entries no attempt under way holds back to `log`, oldest first, then removes them. An
    /// entry is given again if the removal fails (a line twice rather than none).
    public func logOperatorAudit(_ log: (OperatorAuditEntry) -> Void) async throws {
        let batchSize = 1000
        var isLastBatch = false
        while !isLastBatch {
            let entries = try await pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT a.* FROM operator_audit a
                    WHERE NOT EXISTS (SELECT 1 FROM pending_action p WHERE p.audit_id = a.id)
                    ORDER BY a.id LIMIT ?
                    """, arguments: [batchSize]).map { row -> (id: Int64, entry: OperatorAuditEntry) in
                    func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }
                    return (row["id"], OperatorAuditEntry(
                        queueID: row["queue_id"], action: row["action"], operatorName: row["operator"], reason: row["reason"],
                        isWholeMessage: row["whole_message"], recipients: lines(row["recipients"]), inDelivery: lines(row["in_delivery"]),
                        handedOver: lines(row["handed_over"])
                    ))
                }
            }
            isLastBatch = entries.count < batchSize
            guard !entries.isEmpty else { return }
            for entry in entries { log(entry.entry) }
            let ids = entries.map(\.id)
            try await pool.write { db in
                try db.execute(sql: "DELETE FROM operator_audit WHERE id IN (\(databaseQuestionMarks(count: ids.count)))",
                               arguments: StatementArguments(ids))
            }
        }
    }

    /// The operator's words on one line: control characters become spaces, runs of spaces one.
    static func singleLine(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
            .split(separator: " ").joined(separator: " ")
    }
}
