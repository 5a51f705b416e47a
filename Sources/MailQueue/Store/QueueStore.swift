import Foundation
import GRDB
import NIOCore
import SMTPProtocol

/// The queue's tables, read and written. Every write here runs inside a transaction the caller owns
/// (the group committer batches many messages into one); reads use WAL snapshots and never block writers.
public struct QueueStore: Sendable {
    public let pool: DatabasePool
    /// Where the text of large messages lives, one file per message, named by queue id.
    public let spoolDirectory: String

    public init(pool: DatabasePool, spoolDirectory: String) {
        self.pool = pool
        self.spoolDirectory = spoolDirectory
    }

    /// Opens (creating if needed) the database at `path`, with its spool directory beside it.
    public static func open(path: String) throws -> QueueStore {
        let pool = try QueueDatabase.open(path: path)
        let spool = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("spool")
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        return QueueStore(pool: pool, spoolDirectory: spool)
    }

    // MARK: - Writing

    /// Inserts one message and its recipients. Call inside a write transaction.
    ///
    /// With a `lease`, the recipients are stored claimed by its owner (see ``DeliveryLease``) and the
    /// delivery jobs for them are returned: one per domain, at most `recipientsPerJob` recipients each,
    /// carrying the text. Without one they are due now and nothing is returned.
    @discardableResult
    public func insert(_ message: IncomingMessage, in db: Database, lease: DeliveryLease? = nil) throws -> [DeliveryJob] {
        let envelope = message.envelope
        let spoolFile: String?
        let body: Data?
        switch message.content {
        case .inline(let buffer):
            spoolFile = nil
            body = Data(buffer.readableBytesView)
        case .spooled(let fileName):
            spoolFile = fileName
            body = nil
        }
        try db.cachedStatement(sql: """
            INSERT INTO message (queue_id, return_path, size, arrived_at, expires_at, client_address, client_helo,
                                 protocol, auth_user, body_type, is_smtputf8, dsn_ret, dsn_envid, spool_file)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                message.queueID, envelope.reversePath?.description ?? "", message.size,
                message.arrivedAt.unixMilliseconds, message.expiresAt.unixMilliseconds,
                envelope.client.address, envelope.client.greetingName, envelope.client.protocolName,
                message.authenticatedUser, envelope.parameters.body?.rawValue, envelope.parameters.isSMTPUTF8,
                envelope.parameters.dsnReturn?.rawValue, envelope.parameters.dsnEnvelopeID, spoolFile,
            ])
        let messageID = db.lastInsertedRowID
        try db.cachedStatement(sql: "INSERT INTO message_content (message_id, trace_headers, body) VALUES (?, ?, ?)")
            .execute(arguments: [messageID, Data(message.traceHeaders.readableBytesView), body])
        let recipientStatement = try db.cachedStatement(sql: """
            INSERT INTO recipient (message_id, address, domain, orcpt, notify, next_attempt_at, lease_owner, lease_expires_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let leaseUntil = lease?.expiresAt.unixMilliseconds
        let content = lease.map { _ in deliverableContent(of: message) }
        var jobs: [DeliveryJob] = []
        var openJob: [String: Int] = [:]
        for recipient in envelope.recipients {
            let domain = recipient.mailbox.normalizedDomain
            try recipientStatement.execute(arguments: [
                messageID, recipient.mailbox.description, domain,
                recipient.parameters.originalRecipient, recipient.parameters.notify?.keyword,
                leaseUntil ?? message.arrivedAt.unixMilliseconds, lease?.owner, leaseUntil,
            ])
            guard let lease else { continue }
            let claimed = DeliveryJob.Recipient(
                id: db.lastInsertedRowID, address: recipient.mailbox.description,
                originalRecipient: recipient.parameters.originalRecipient, notify: recipient.parameters.notify, attempts: 0
            )
            if let position = openJob[domain], jobs[position].recipients.count < lease.recipientsPerJob {
                jobs[position].recipients.append(claimed)
            } else {
                openJob[domain] = jobs.count
                jobs.append(DeliveryJob(fresh: message, messageID: messageID, content: content!, domain: domain, recipients: [claimed]))
            }
        }
        return jobs
    }

    /// The text as delivery sends it: trace headers, then the text (in memory, or read from its spool file).
    private func deliverableContent(of message: IncomingMessage) -> StoredContent {
        switch message.content {
        case .inline(var text):
            var whole = message.traceHeaders
            whole.reserveCapacity(whole.readableBytes + text.readableBytes)
            whole.writeBuffer(&text)
            return .inline(whole)
        case .spooled(let fileName):
            return .spooled(traceHeaders: message.traceHeaders, path: spoolPath(fileName))
        }
    }

    /// The path of a spool file, by its name in the `message` table.
    func spoolPath(_ fileName: String) -> String {
        (spoolDirectory as NSString).appendingPathComponent(fileName)
    }

    /// Removes spool files that no message refers to: left by a crash between the file's fsync and the
    /// commit of its row. Such a message was never acknowledged, so nothing is lost. A spool file is named
    /// by its message's queue id, so each is looked up by the unique index: the cost follows the number
    /// of spool files, not the depth of the queue.
    public func removeOrphanedSpoolFiles() throws -> Int {
        let names = try FileManager.default.contentsOfDirectory(atPath: spoolDirectory)
        guard !names.isEmpty else { return 0 }
        let orphans = try pool.read { db in
            let statement = try db.cachedStatement(sql: "SELECT 1 FROM message WHERE queue_id = ? AND spool_file = ?")
            return try names.filter { try Int.fetchOne(statement, arguments: [$0, $0]) == nil }
        }
        for name in orphans {
            try FileManager.default.removeItem(atPath: spoolPath(name))
        }
        return orphans.count
    }

    // MARK: - Reading

    /// The oldest messages first, at most `limit`.
    public func listMessages(limit: Int = 1000) throws -> [QueuedMessage] {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM message ORDER BY arrived_at, id LIMIT ?", arguments: [limit])
            return try rows.map { try QueuedMessage(row: $0, db: db) }
        }
    }

    public func message(queueID: String) throws -> QueuedMessage? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM message WHERE queue_id = ?", arguments: [queueID])
                .map { try QueuedMessage(row: $0, db: db) }
        }
    }

    /// The stored text of a message, trace headers first, as it will be delivered.
    public func content(queueID: String) throws -> Data? {
        let row = try pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT c.trace_headers, c.body, m.spool_file FROM message m JOIN message_content c ON c.message_id = m.id
                WHERE m.queue_id = ?
                """, arguments: [queueID])
        }
        guard let row else { return nil }
        var data: Data = row["trace_headers"]
        if let fileName: String = row["spool_file"] {
            data.append(try Data(contentsOf: URL(fileURLWithPath: spoolPath(fileName))))
        } else if let body: Data = row["body"] {
            data.append(body)
        }
        return data
    }

    public func messageCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM message") ?? 0 }
    }
}
