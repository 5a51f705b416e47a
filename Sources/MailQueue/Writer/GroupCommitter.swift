import GRDB
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The queue's one writer. Accepted messages and delivery results go through one ``BatchedWriter``: every
/// request that arrives while a commit is in flight goes into the next one, so one transaction and one
/// fsync (`synchronous=FULL`) serve the arrivals and the results of that moment together. Arrivals never
/// queue behind a separate results transaction, and the disk sees one flush where it would see two.
///
/// `enqueue` returns only after the batch holding its message has committed: then, and only then, may the
/// server say `250`. A commit is never interrupted by cancellation (``writeToCompletion``), and a cancelled
/// committer stays open for the services that hold it open (``keepingOpen(_:)``, the delivery engine): when
/// the shutdown bound runs out and the whole service group is cancelled, a result a worker already has
/// (a next hop's `250`) is still written, so it is never sent twice. With a ``DeliveryHandoff`` attached,
/// the messages it has room for are stored leased to it and handed over after the commit.
public final class GroupCommitter: Service, Sendable {
    public typealias Closed = BatchedWriter<Request, QueueStore.RecordOutcome?>.Closed

    /// One write: a message to accept, or one delivery job's results.
    public enum Request: Sendable {
        case arrival(IncomingMessage)
        case results(QueueStore.JobRecord)
    }

    public let store: QueueStore
    /// `petrel_group_commit_batch_size`: messages accepted per commit (one fsync each).
    private static let batchSizes = Recorder(label: "petrel_group_commit_batch_size", aggregate: true)
    private let writer: BatchedWriter<Request, QueueStore.RecordOutcome?>
    private let handoff = NIOLockedValueBox<(any DeliveryHandoff)?>(nil)
    private let openness = NIOLockedValueBox(Openness())

    /// Who keeps the committer open after its task is cancelled.
    private struct Openness {
        var holders = 0
        var isCancelled = false
    }
    private let logger: Logger

    /// - Parameters:
    ///   - onBatch: called with the number of messages each committed batch accepted.
    public init(store: QueueStore, logger: Logger, onBatch: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.store = store
        self.logger = logger
        let handoff = self.handoff
        self.writer = BatchedWriter(write: { requests in
            let (outcomes, accepted) = try await Self.write(requests, to: store, handoff: handoff.withLockedValue { $0 })
            if accepted > 0 {
                Self.batchSizes.record(accepted)
                onBatch(accepted)
            }
            return outcomes
        })
    }

    /// Fresh mail goes straight to this delivery engine from now on, as far as it has room.
    public func attach(_ handoff: any DeliveryHandoff) {
        self.handoff.withLockedValue { $0 = handoff }
    }

    /// Stores the message durably. Throws when it could not be stored: the message is then not accepted.
    public func enqueue(_ message: IncomingMessage) async throws {
        do {
            _ = try await writer.submit(.arrival(message))
        } catch {
            logger.error("queue write failed", metadata: ["queue_id": "\(message.queueID)", "error": "\(error)"])
            throw error
        }
    }

    /// Writes one job's results (see ``QueueStore/recordResults(_:)``). Returns whether the message left the
    /// queue and the notifications the results completed.
    public func record(_ record: QueueStore.JobRecord) async throws -> QueueStore.RecordOutcome {
        try await writer.submit(.results(record))!
    }

    /// Writes a batch in one transaction. Returns each request's answer (for results: what they did to the
    /// message; `nil` for an arrival) and the number of messages accepted.
    private static func write(_ requests: [Request], to store: QueueStore, handoff: (any DeliveryHandoff)?)
        async throws -> ([QueueStore.RecordOutcome?], Int) {
        let arrivals = requests.compactMap { request -> IncomingMessage? in
            if case .arrival(let message) = request { message } else { nil }
        }
        let records = requests.compactMap { request -> QueueStore.JobRecord? in
            if case .results(let record) = request { record } else { nil }
        }
        let lease = arrivals.isEmpty ? nil : handoff?.reserve(messages: arrivals.count)
        let jobs: [DeliveryJob]
        let removed: [QueueStore.RecordOutcome]
        do {
            (jobs, removed) = try await store.pool.writeToCompletion { db -> ([DeliveryJob], [QueueStore.RecordOutcome]) in
                var jobs: [DeliveryJob] = []
                for (index, message) in arrivals.enumerated() {
                    jobs += try store.insert(message, in: db, lease: index < (lease?.messages ?? 0) ? lease : nil)
                }
                return (jobs, try store.recordResults(records, in: db))
            }
        } catch {
            if let lease { handoff?.cancel(lease) }
            throw error
        }
        store.removeSpoolFiles(of: removed)
        if !arrivals.isEmpty {
            await handoff?.committed(jobs, lease: lease, unleasedMessages: arrivals.count - (lease?.messages ?? 0))
        }
        var outcomes = removed.makeIterator()
        let answers = requests.map { request -> QueueStore.RecordOutcome? in
            if case .results = request { return outcomes.next()! }
            return nil
        }
        return (answers, arrivals.count)
    }

    public func run() async throws {
        // Whatever arrived before shutdown is still written; later arrivals are refused.
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await writer.run()
            } onCancel: {
                let isHeld = openness.withLockedValue { openness in
                    openness.isCancelled = true
                    return openness.holders > 0
                }
                if !isHeld { writer.finish() }
            }
        } onGracefulShutdown: {
            self.writer.finish()
        }
    }

    /// Runs `body` (a service's `run()` that submits to this committer) with the committer kept open for
    /// it: if the committer's task is cancelled meanwhile, it goes on writing until `body` has returned.
    public func keepingOpen<T>(_ body: () async throws -> T) async rethrows -> T {
        openness.withLockedValue { $0.holders += 1 }
        defer {
            let isReleased = openness.withLockedValue { openness in
                openness.holders -= 1
                return openness.holders == 0 && openness.isCancelled
            }
            if isReleased { writer.finish() }
        }
        return try await body()
    }
}

extension DatabaseWriter {
    /// `write`, but deaf to the task's cancellation (GRDB's async `write` gives up when the task is
    /// cancelled): a commit of accepted mail or of delivery results runs to its end once submitted.
    func writeToCompletion<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            asyncWrite(updates) { _, result in continuation.resume(with: result) }
        }
    }
}
