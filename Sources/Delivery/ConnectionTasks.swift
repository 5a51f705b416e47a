import NIOConcurrencyHelpers

/// The task group that owns every open outbound connection: each ``OutboundConnection`` is served by one
/// child task here for its whole life (see there), so no connection's task outlives the delivery engine.
///
/// ``run()`` is a child task of ``DeliveryScheduler/run()``. ``start(_:)`` hands it a connection to serve;
/// ``finish()`` refuses new ones, and `run()` returns once every connection's task has ended (the cache
/// says QUIT to the idle ones first). Under cancellation the group stops waiting for new connections, but
/// still starts those handed over before, so that each of them fails its waiting opener and closes its
/// channel: none is dropped unanswered.
///
/// Openers are few at a time (each worker waits for its connection's greeting), so the list of
/// connections waiting to be started is bounded by the number of workers.
final class ConnectionTasks: Sendable {
    typealias Serve = @Sendable () async -> Void

    private struct State {
        var waiting: [Serve] = []
        var waiter: CheckedContinuation<Void, Never>?
        var isFinished = false
    }

    private let state = NIOLockedValueBox(State())

    init() {}

    /// Serves connections until ``finish()`` (or cancellation), then waits for all of them to end.
    func run() async {
        await withDiscardingTaskGroup { group in
            while true {
                let (serves, isFinished) = state.withLockedValue { state in
                    if Task.isCancelled { state.isFinished = true }
                    defer { state.waiting.removeAll() }
                    return (state.waiting, state.isFinished)
                }
                for serve in serves {
                    group.addTask { await serve() }
                }
                if isFinished { return }
                await waitForWork()
            }
        }
    }

    /// Runs `serve` as a child task of ``run()``; `false` when the engine is stopping (nothing is started).
    func start(_ serve: @escaping Serve) -> Bool {
        let (isStarted, waiter) = state.withLockedValue { state -> (Bool, CheckedContinuation<Void, Never>?) in
            if state.isFinished { return (false, nil) }
            state.waiting.append(serve)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return isStarted
    }

    /// No new connections; ``run()`` returns when those open have ended.
    func finish() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.isFinished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    private func waitForWork() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let isReady = state.withLockedValue { state -> Bool in
                    if !state.waiting.isEmpty || state.isFinished || Task.isCancelled { return true }
                    state.waiter = continuation
                    return false
                }
                if isReady { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}
