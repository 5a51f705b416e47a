import NIOConcurrencyHelpers

/// Group commit, for any kind of write: every request that arrives while a batch is being written goes
/// into the next batch, so that one transaction — one fsync with `synchronous=FULL` — serves them all,
/// and batches grow by themselves with the load. `submit` returns once the batch holding its request has
/// committed. If a batch fails, its requests are written one by one, so that one bad request cannot fail
/// the others; a failure of its own is thrown to its submitter.
///
/// `run()` is the writing loop: run it as a child task (or from a `Service`), and call `finish()` when no
/// more requests will come; it writes what is pending, then returns. Later submissions throw ``Closed``.
/// Only `finish()` ends it, not the task's cancellation: a request submitted is written, or refused.
public final class BatchedWriter<Request: Sendable, Response: Sendable>: Sendable {
    public struct Closed: Error {}

    private struct Pending: Sendable {
        var request: Request
        var continuation: CheckedContinuation<Response, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        /// `finish()` was called: the loop writes what is pending and ends.
        var isFinishing = false
        /// The loop ended: submissions are refused.
        var isClosed = false
    }

    private let state = NIOLockedValueBox(State())
    private let doorbell = Doorbell()
    private let write: @Sendable ([Request]) async throws -> [Response]
    private let onBatch: @Sendable (Int) -> Void

    /// - Parameters:
    ///   - write: writes the batch in one transaction and returns one response per request, in order.
    ///   - onBatch: called with each committed batch's size.
    public init(write: @escaping @Sendable ([Request]) async throws -> [Response], onBatch: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.write = write
        self.onBatch = onBatch
    }

    public func submit(_ request: Request) async throws -> Response {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Response, any Error>) in
            let isClosed = state.withLockedValue { state in
                if !state.isClosed { state.pending.append(Pending(request: request, continuation: continuation)) }
                return state.isClosed
            }
            if isClosed {
                continuation.resume(throwing: Closed())
            } else {
                doorbell.ring()
            }
        }
    }

    /// Writes batches until ``finish()``, then what is left.
    public func run() async {
        while !state.withLockedValue({ $0.isFinishing }) {
            await doorbell.waitEvenIfCancelled()
            await writePending()
        }
        state.withLockedValue { $0.isClosed = true }
        await writePending()
    }

    public func finish() {
        state.withLockedValue { $0.isFinishing = true }
        doorbell.ring()
    }

    private func writePending() async {
        while true {
            let batch = state.withLockedValue { state in
                defer { state.pending.removeAll(keepingCapacity: true) }
                return state.pending
            }
            if batch.isEmpty { return }
            await commit(batch)
        }
    }

    private func commit(_ batch: [Pending]) async {
        do {
            let responses = try await write(batch.map(\.request))
            precondition(responses.count == batch.count, "a batch write must answer every request")
            onBatch(batch.count)
            for (pending, response) in zip(batch, responses) { pending.continuation.resume(returning: response) }
        } catch {
            guard batch.count > 1 else {
                batch[0].continuation.resume(throwing: error)
                return
            }
            for pending in batch { await commit([pending]) }
        }
    }
}
