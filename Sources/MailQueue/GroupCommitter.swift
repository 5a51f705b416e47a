import GRDB
import Logging
import Metrics
import ServiceLifecycle

/// Writes accepted messages to the queue with group commit (a ``BatchedWriter``): every message that
/// arrives while a commit is in flight goes into the next one, so durability costs one fsync per batch
/// rather than one per message. `enqueue` returns only after the batch holding its message has committed
/// with `synchronous=FULL`: then, and only then, may the server say `250`.
public final class GroupCommitter: Service, Sendable {
    public typealias Closed = BatchedWriter<IncomingMessage, Void>.Closed

    public let store: QueueStore
    /// `petrel_group_commit_batch_size`: messages per commit (one fsync each).
    private static let batchSizes = Recorder(label: "petrel_group_commit_batch_size", aggregate: true)
    private let writer: BatchedWriter<IncomingMessage, Void>
    private let logger: Logger

    /// - Parameters:
    ///   - handoff: the delivery engine, which takes fresh mail straight from the commit when it has room.
    ///   - onBatch: called with each committed batch's size.
    public init(store: QueueStore, logger: Logger, handoff: (any DeliveryHandoff)? = nil,
                onBatch: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.store = store
        self.logger = logger
        self.writer = BatchedWriter(
            write: { messages in
                let lease = handoff?.reserve(messages: messages.count)
                let jobs: [DeliveryJob]
                do {
                    jobs = try await store.pool.write { db in
                        var jobs: [DeliveryJob] = []
                        for (index, message) in messages.enumerated() {
                            jobs += try store.insert(message, in: db, lease: index < (lease?.messages ?? 0) ? lease : nil)
                        }
                        return jobs
                    }
                } catch {
                    if let lease { handoff?.cancel(lease) }
                    throw error
                }
                handoff?.committed(jobs, lease: lease, unleasedMessages: messages.count - (lease?.messages ?? 0))
                return Array(repeating: (), count: messages.count)
            },
            onBatch: { size in
                Self.batchSizes.record(size)
                onBatch(size)
            }
        )
    }

    /// Stores the message durably. Throws when it could not be stored: the message is then not accepted.
    public func enqueue(_ message: IncomingMessage) async throws {
        do {
            try await writer.submit(message)
        } catch {
            logger.error("queue write failed", metadata: ["queue_id": "\(message.queueID)", "error": "\(error)"])
            throw error
        }
    }

    public func run() async throws {
        // Whatever arrived before shutdown is still written; later arrivals are refused.
        await withGracefulShutdownHandler {
            await writer.run()
        } onGracefulShutdown: {
            self.writer.finish()
        }
    }
}
