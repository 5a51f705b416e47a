import Foundation
import GRDB

/// Opens the queue database: SQLite in WAL mode through a GRDB `DatabasePool` (one writer, many
/// readers), with the schema from `/migrations` applied in order.
///
/// Durability: GRDB sets `synchronous=NORMAL` on WAL connections, which can lose the last commits on
/// power loss. The writer is switched to `synchronous=FULL`, so a commit has been fsynced when it returns,
/// and ``synchronousMode()`` lets tests and start-up assert it.
public enum QueueDatabase {
    public struct Migration: Sendable {
        public var name: String
        public var sql: String
    }

    /// The migrations, in the order of their numbers. Their text is `/migrations/*.sql`, embedded at build time.
    public static let migrations: [Migration] = [
        Migration(name: "0001_queue", sql: String(decoding: PackageResources._001_queue_sql, as: UTF8.self)),
        Migration(name: "0002_queue_admin", sql: String(decoding: PackageResources._002_queue_admin_sql, as: UTF8.self)),
        Migration(name: "0003_sender_notices", sql: String(decoding: PackageResources._003_sender_notices_sql, as: UTF8.self)),
        Migration(name: "0004_operator_audit", sql: String(decoding: PackageResources._004_operator_audit_sql, as: UTF8.self)),
    ]

    /// How long a reader or the writer waits for a lock before giving up with SQLITE_BUSY.
    public static let busyTimeout: TimeInterval = 10

    public static func open(path: String) throws -> DatabasePool {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.barrierWriteWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        var migrator = DatabaseMigrator()
        for migration in migrations {
            migrator.registerMigration(migration.name) { db in
                try db.execute(sql: migration.sql)
            }
        }
        try migrator.migrate(pool)
        let mode = try synchronousMode(of: pool)
        guard mode == 2 else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "queue writer is not synchronous=FULL (got \(mode))")
        }
        return pool
    }

    /// The writer connection's `PRAGMA synchronous`: 2 is FULL.
    public static func synchronousMode(of pool: DatabasePool) throws -> Int {
        try pool.barrierWriteWithoutTransaction { db in
            try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
        }
    }
}
