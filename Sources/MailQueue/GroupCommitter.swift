import GRDB
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Writes accepted messages to the queue in batches: every message that arrives while a commit is in
/// flight goes into the next one, so durability costs one fsync per batch rather than one per message,
/// and the batch grows by itself with the load. `enqueue` returns only after the batch holding its
/// message has committed with `synchronous=FULL`: then, and only then, may the server say `250`.
public final class GroupCommitter: Service, Sendable {
    public struct Closed: Error {}

    private struct Request: Sendable {
        var message: IncomingMessage
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var pending: [Request] = []
        var isClosed = false
    }

    public let store: QueueStore
    /// `petrel_group_commit_batch_size`: messages per commit (one fsync each).
    private static let batchSizes = Recorder(label: "petrel_group_commit_batch_size", aggregate: true)
    private let state = NIOLockedValueBox(State())
    private let wakeUps: AsyncStream<Void>
    private let wakeUp: AsyncStream<Void>.Continuation
    private let logger: Logger
    /// Called after each batch with its size, for metrics.
    private let onBatch: @Sendable (Int) -> Void

    public init(store: QueueStore, logger: Logger, onBatch: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.store = store
        self.logger = logger
        self.onBatch = onBatch
        (wakeUps, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Stores the message durably. Throws when it could not be stored: the message is then not accepted.
    public func enqueue(_ message: IncomingMessage) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let isClosed = state.withLockedValue { state in
                if !state.isClosed { state.pending.append(Request(message: message, continuation: continuation)) }
                return state.isClosed
            }
            if isClosed {
                continuation.resume(throwing: Closed())
            } else {
                wakeUp.yield()
            }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            for await _ in wakeUps {
                await commitPending()
            }
        } onGracefulShutdown: {
            self.wakeUp.finish()
        }
        // Whatever arrived during shutdown is still written; later arrivals are refused.
        state.withLockedValue { $0.isClosed = true }
        await commitPending()
    }

    private func commitPending() async {
        while true {
            let batch = state.withLockedValue { state in
                defer { state.pending.removeAll(keepingCapacity: true) }
                return state.pending
            }
            if batch.isEmpty { return }
            await commit(batch)
        }
    }

    private func commit(_ batch: [Request]) async {
        do {
            try await write(batch)
            Self.batchSizes.record(batch.count)
            onBatch(batch.count)
            for request in batch { request.continuation.resume() }
        } catch {
            guard batch.count > 1 else {
                logger.error("queue write failed", metadata: ["queue_id": "\(batch[0].message.queueID)", "error": "\(error)"])
                batch[0].continuation.resume(throwing: error)
                return
            }
            // One bad message must not sink the others: retry them one by one.
            for request in batch { await commit([request]) }
        }
    }

    private func write(_ batch: [Request]) async throws {
        let store = self.store
        let messages = batch.map(\.message)
        try await store.pool.write { db in
            for message in messages {
                try store.insert(message, in: db)
            }
        }
    }
}
