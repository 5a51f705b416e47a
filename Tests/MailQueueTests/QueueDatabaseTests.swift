import Foundation
import GRDB
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SMTPProtocol
import Testing
@testable import MailQueue

/// The queue on a real SQLite file in WAL mode: durability settings, migrations, group commit, and
/// what happens when the disk is full.
struct QueueDatabaseTests {
    static func message(_ queueID: String = QueueID.make(), recipients: [String] = ["x@far.test"], body: String = "Subject: t\r\n\r\nhi\r\n") -> IncomingMessage {
        let envelope = Envelope(
            reversePath: Mailbox(localPart: "a", domain: "b.test"),
            parameters: MailParameters(),
            recipients: recipients.map {
                let parts = $0.split(separator: "@")
                return EnvelopeRecipient(mailbox: Mailbox(localPart: String(parts[0]), domain: String(parts[1])))
            },
            client: ClientIdentity(address: "127.0.0.1", greetingName: "client", protocolName: "ESMTP")
        )
        return IncomingMessage(
            queueID: queueID, envelope: envelope, traceHeaders: ByteBuffer(string: "Received: test\r\n"),
            content: .inline(ByteBuffer(string: body)), contentSize: body.utf8.count,
            arrivedAt: Date(), expiresAt: Date().addingTimeInterval(86400)
        )
    }

    @Test func writerIsSynchronousFullInWALMode() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let pool = try QueueDatabase.open(path: directory.path + "/queue.sqlite")
        #expect(try QueueDatabase.synchronousMode(of: pool) == 2)
        let journal = try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(journal == "wal")
        // It holds across writes.
        try pool.write { db in try db.execute(sql: "CREATE TABLE scratch (x)") }
        #expect(try QueueDatabase.synchronousMode(of: pool) == 2)
    }

    @Test func appliesMigrationsOnceAndRecordsThem() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/queue.sqlite"
        _ = try QueueDatabase.open(path: path)
        let pool = try QueueDatabase.open(path: path)
        let applied = try pool.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(applied == QueueDatabase.migrations.map(\.name))
        let tables = try pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") }
        #expect(Set(tables).isSuperset(of: ["message", "message_content", "recipient"]))
    }

    @Test func embeddedMigrationsMatchTheFilesInMigrations() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../migrations").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files.map { String($0.dropLast(4)) } == QueueDatabase.migrations.map(\.name))
        for (file, migration) in zip(files, QueueDatabase.migrations) {
            #expect(try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8) == migration.sql)
        }
    }

    @Test func storesTheEnvelopeAndEveryRecipient() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        var message = Self.message(recipients: ["x@Far.test", "y@other.test"])
        message.envelope.parameters.dsnReturn = .full
        message.envelope.parameters.dsnEnvelopeID = "env+2Bid"
        message.envelope.recipients[0].parameters.notify = [.success, .failure]
        message.envelope.recipients[0].parameters.originalRecipient = "rfc822;x@far.test"
        _ = try store.pool.write { db in try store.insert(message, in: db) }

        let stored = try #require(try store.message(queueID: message.queueID))
        #expect(stored.sender == "a@b.test")
        #expect(stored.size == message.size)
        #expect(stored.dsnReturn == "FULL")
        #expect(stored.dsnEnvelopeID == "env+2Bid")
        #expect(stored.recipients.map(\.address) == ["x@Far.test", "y@other.test"])
        #expect(stored.recipients.map(\.state) == ["queued", "queued"])
        #expect(stored.recipients[0].notify == "SUCCESS,FAILURE")
        #expect(stored.recipients[0].originalRecipient == "rfc822;x@far.test")
        let content = try #require(try store.content(queueID: message.queueID))
        #expect(String(decoding: content, as: UTF8.self) == "Received: test\r\nSubject: t\r\n\r\nhi\r\n")
        let domains = try store.pool.read { db in try String.fetchAll(db, sql: "SELECT domain FROM recipient ORDER BY id") }
        #expect(domains == ["far.test", "other.test"])
    }

    @Test func groupCommitBatchesConcurrentMessages() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let batches = BatchRecorder()
        let committer = GroupCommitter(store: store, logger: Logger(label: "test"), onBatch: { batches.record($0) })
        let count = 200
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            try await withThrowingTaskGroup(of: Void.self) { senders in
                for _ in 0..<count {
                    senders.addTask { try await committer.enqueue(Self.message()) }
                }
                try await senders.waitForAll()
            }
            group.cancelAll()
        }
        #expect(try store.messageCount() == count)
        #expect(batches.total == count)
        // Many sessions' messages shared a commit: fewer commits than messages.
        #expect(batches.sizes.count < count)
        #expect(batches.sizes.max()! > 1)
    }

    @Test func fullDiskFailsTheMessageAndServiceResumes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let committer = GroupCommitter(store: store, logger: Logger(label: "test"))
        // Cap the database at its current size: the next insert fails with SQLITE_FULL, as on a full disk.
        let pages = try await store.pool.barrierWriteWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA page_count")! }
        try await store.pool.barrierWriteWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = \(pages)") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            let big = Self.message(body: String(repeating: "x", count: 64 * 1024))
            await #expect(throws: DatabaseError.self) { try await committer.enqueue(big) }
            #expect(try store.message(queueID: big.queueID) == nil)
            try await store.pool.barrierWriteWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1073741823") }
            let next = Self.message()
            try await committer.enqueue(next)
            #expect(try store.message(queueID: next.queueID) != nil)
            group.cancelAll()
        }
    }

    @Test func removesOnlyOrphanedSpoolFiles() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        var message = Self.message()
        message.content = .spooled(fileName: message.queueID)
        _ = FileManager.default.createFile(atPath: store.spoolDirectory + "/" + message.queueID, contents: Data("text\r\n".utf8))
        _ = FileManager.default.createFile(atPath: store.spoolDirectory + "/ORPHAN", contents: Data("x".utf8))
        _ = try store.pool.write { db in try store.insert(message, in: db) }
        #expect(try store.removeOrphanedSpoolFiles() == 1)
        #expect(FileManager.default.fileExists(atPath: store.spoolDirectory + "/" + message.queueID))
        #expect(!FileManager.default.fileExists(atPath: store.spoolDirectory + "/ORPHAN"))
        #expect(String(decoding: try store.content(queueID: message.queueID)!, as: UTF8.self) == "Received: test\r\ntext\r\n")
    }

    @Test func queueIDsAreShortSortableAndUnique() {
        let ids = (0..<10_000).map { _ in QueueID.make() }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy(QueueID.isValid))
        #expect(ids.allSatisfy { $0.count == 14 })
        let early = QueueID.make(at: Date(timeIntervalSince1970: 1_700_000_000))
        let late = QueueID.make(at: Date(timeIntervalSince1970: 1_800_000_000))
        #expect(early < late)
    }
}

/// Collects group-commit batch sizes from the committer's callback.
final class BatchRecorder: Sendable {
    private let recorded = NIOLockedValueBox<[Int]>([])
    func record(_ size: Int) { recorded.withLockedValue { $0.append(size) } }
    var sizes: [Int] { recorded.withLockedValue { $0 } }
    var total: Int { sizes.reduce(0, +) }
}

/// The committer at the end of a shutdown that ran out of time: the whole service group is cancelled.
struct GroupCommitterCancellationTests {
    /// A service that holds the committer open (the delivery engine) may still hand it a write after the
    /// cancellation (a result it got from a next hop just then): it is written, not refused or interrupted.
    @Test func aCancelledCommitterWritesWhatItsHolderStillSubmits() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try QueueStore.open(path: directory.path + "/queue.sqlite")
        let committer = GroupCommitter(store: store, logger: Logger(label: "test"))
        let late = QueueDatabaseTests.message()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            group.addTask {
                try await committer.keepingOpen {
                    while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
                    try await committer.enqueue(late)
                }
            }
            try await Task.sleep(for: .milliseconds(50))
            group.cancelAll()
            try await group.waitForAll()
        }
        #expect(try store.message(queueID: late.queueID) != nil)
    }
}
