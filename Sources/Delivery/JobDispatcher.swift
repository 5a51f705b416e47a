import MailQueue
import NIOConcurrencyHelpers

/// Hands jobs to the workers, at most `maximumPerDomain` at once to one domain, and keeps track of which
/// recipients are in hand so that a lease that runs out never puts one recipient in two jobs.
///
/// A recipient in hand is known by its message's queue id as well as its row id: SQLite hands the row id
/// of a deleted last row to the next insert, so a new message can reuse an id that a worker still holds
/// while it writes its results.
///
/// Jobs come from two places: the feeder's claims, and the group commit handing over fresh mail
/// (``reserve(upTo:)`` then ``add(_:reserved:)``). Both share `capacity`: the jobs waiting for a worker.
/// A lock rather than an actor, because the committer asks for room synchronously, inside its write.
final class JobDispatcher: Sendable {
    let capacity: Int
    let maximumPerDomain: Int

    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<DeliveryJob?, Never>
    }

    private struct RecipientKey: Hashable {
        var queueID: String
        var recipientID: Int64
    }

    private static func keys(_ job: DeliveryJob) -> [RecipientKey] {
        job.recipients.map { RecipientKey(queueID: job.queueID, recipientID: $0.id) }
    }

    private struct State {
        var pending: [DeliveryJob] = []
        /// Slots promised to fresh mail whose batch has not committed yet.
        var reserved = 0
        var activePerDomain: [String: Int] = [:]
        var inHand: Set<RecipientKey> = []
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var cancelledWaiters: Set<Int> = []
        var isShuttingDown = false

        mutating func takeEligible(maximumPerDomain: Int) -> DeliveryJob? {
            guard let index = pending.firstIndex(where: { activePerDomain[$0.domain, default: 0] < maximumPerDomain }) else { return nil }
            let job = pending.remove(at: index)
            activePerDomain[job.domain, default: 0] += 1
            return job
        }

        /// Pairs waiting workers with eligible jobs; the caller resumes them outside the lock.
        mutating func matchWaiters(maximumPerDomain: Int) -> [(CheckedContinuation<DeliveryJob?, Never>, DeliveryJob)] {
            var matched: [(CheckedContinuation<DeliveryJob?, Never>, DeliveryJob)] = []
            while !waiters.isEmpty, let job = takeEligible(maximumPerDomain: maximumPerDomain) {
                matched.append((waiters.removeFirst().continuation, job))
            }
            return matched
        }
    }

    private let state = NIOLockedValueBox(State())

    init(capacity: Int, maximumPerDomain: Int) {
        self.capacity = capacity
        self.maximumPerDomain = maximumPerDomain
    }

    /// How many more jobs the dispatcher wants.
    var room: Int {
        state.withLockedValue { Self.room(in: $0, capacity: capacity) }
    }

    private static func room(in state: State, capacity: Int) -> Int {
        state.isShuttingDown ? 0 : max(0, capacity - state.pending.count - state.reserved)
    }

    /// Promises room for up to `count` jobs to come; returns how many were promised.
    func reserve(upTo count: Int) -> Int {
        state.withLockedValue { state in
            let granted = min(count, Self.room(in: state, capacity: capacity))
            state.reserved += granted
            return granted
        }
    }

    /// Gives back a promise that will not be used.
    func cancelReservation(_ count: Int) {
        state.withLockedValue { $0.reserved = max(0, $0.reserved - count) }
    }

    /// Adds jobs, dropping recipients that are already in hand, and ends a reservation of `reserved`
    /// slots. Returns the recipients of jobs refused because the dispatcher is shutting down: their
    /// leases must be released.
    @discardableResult
    func add(_ jobs: [DeliveryJob], reserved: Int = 0) -> [Int64] {
        let (matched, refused) = state.withLockedValue { state -> ([(CheckedContinuation<DeliveryJob?, Never>, DeliveryJob)], [Int64]) in
            state.reserved = max(0, state.reserved - reserved)
            if state.isShuttingDown {
                return ([], jobs.flatMap { $0.recipients.map(\.id) })
            }
            for var job in jobs {
                job.recipients.removeAll { state.inHand.contains(RecipientKey(queueID: job.queueID, recipientID: $0.id)) }
                guard !job.recipients.isEmpty else { continue }
                state.inHand.formUnion(Self.keys(job))
                state.pending.append(job)
            }
            return (state.matchWaiters(maximumPerDomain: maximumPerDomain), [])
        }
        for (continuation, job) in matched { continuation.resume(returning: job) }
        return refused
    }

    /// The next job for a worker, or `nil` when shutting down.
    func next() async -> DeliveryJob? {
        if Task.isCancelled { return nil }
        let id = state.withLockedValue { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        // A cancelled worker (the service group gave up waiting) stops waiting too.
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<DeliveryJob?, Never>) in
                let immediate = state.withLockedValue { state -> DeliveryJob?? in
                    if state.isShuttingDown || state.cancelledWaiters.remove(id) != nil { return .some(nil) }
                    if let job = state.takeEligible(maximumPerDomain: maximumPerDomain) { return .some(job) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> Waiter? in
                if let index = state.waiters.firstIndex(where: { $0.id == id }) { return state.waiters.remove(at: index) }
                state.cancelledWaiters.insert(id)
                return nil
            }
            waiter?.continuation.resume(returning: nil)
        }
    }

    /// A worker is done with a job.
    func finished(_ job: DeliveryJob) {
        let matched = state.withLockedValue { state in
            state.activePerDomain[job.domain, default: 1] -= 1
            if state.activePerDomain[job.domain] == 0 { state.activePerDomain[job.domain] = nil }
            state.inHand.subtract(Self.keys(job))
            return state.matchWaiters(maximumPerDomain: maximumPerDomain)
        }
        for (continuation, job) in matched { continuation.resume(returning: job) }
    }

    /// Stops handing out work. Returns the recipients of jobs never started, whose leases must be released.
    func shutDown() -> [Int64] {
        let (unstarted, waiters) = state.withLockedValue { state -> ([Int64], [Waiter]) in
            state.isShuttingDown = true
            let unstarted = state.pending.flatMap { $0.recipients.map(\.id) }
            state.inHand.subtract(state.pending.flatMap(Self.keys))
            state.pending.removeAll()
            defer { state.waiters.removeAll() }
            return (unstarted, state.waiters)
        }
        for waiter in waiters { waiter.continuation.resume(returning: nil) }
        return unstarted
    }
}
