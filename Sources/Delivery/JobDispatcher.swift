import MailQueue

/// Hands claimed jobs to the workers, at most `maximumPerDomain` at once to one domain, and keeps track of
/// which recipients are in hand so that a lease that runs out never puts one recipient in two jobs.
actor JobDispatcher {
    let capacity: Int
    let maximumPerDomain: Int
    private var pending: [DeliveryJob] = []
    private var activePerDomain: [String: Int] = [:]
    private var inHand: Set<Int64> = []
    private var waiters: [(id: Int, continuation: CheckedContinuation<DeliveryJob?, Never>)] = []
    private var nextWaiterID = 0
    private var cancelledWaiters: Set<Int> = []
    private var isShuttingDown = false

    init(capacity: Int, maximumPerDomain: Int) {
        self.capacity = capacity
        self.maximumPerDomain = maximumPerDomain
    }

    /// How many more jobs the dispatcher wants.
    var room: Int { isShuttingDown ? 0 : max(0, capacity - pending.count) }

    /// Adds claimed jobs, dropping recipients that are already in hand.
    func add(_ jobs: [DeliveryJob]) {
        for var job in jobs {
            job.recipients.removeAll { inHand.contains($0.id) }
            guard !job.recipients.isEmpty else { continue }
            inHand.formUnion(job.recipients.map(\.id))
            pending.append(job)
        }
        dispatch()
    }

    /// The next job for a worker, or `nil` when shutting down.
    func next() async -> DeliveryJob? {
        if isShuttingDown || Task.isCancelled { return nil }
        if let job = takeEligible() { return job }
        nextWaiterID += 1
        let id = nextWaiterID
        // A cancelled worker (the service group gave up waiting) stops waiting too.
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if cancelledWaiters.remove(id) != nil {
                    continuation.resume(returning: nil)
                } else {
                    waiters.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: Int) {
        if let index = waiters.firstIndex(where: { $0.id == id }) {
            waiters.remove(at: index).continuation.resume(returning: nil)
        } else {
            cancelledWaiters.insert(id)
        }
    }

    /// A worker is done with a job.
    func finished(_ job: DeliveryJob) {
        activePerDomain[job.domain, default: 1] -= 1
        if activePerDomain[job.domain] == 0 { activePerDomain[job.domain] = nil }
        inHand.subtract(job.recipients.map(\.id))
        dispatch()
    }

    /// Stops handing out work. Returns the recipients of jobs never started, whose leases must be released.
    func shutDown() -> [Int64] {
        isShuttingDown = true
        let unstarted = pending.flatMap { $0.recipients.map(\.id) }
        pending.removeAll()
        inHand.subtract(unstarted)
        for waiter in waiters { waiter.continuation.resume(returning: nil) }
        waiters.removeAll()
        return unstarted
    }

    private func dispatch() {
        while !waiters.isEmpty, let job = takeEligible() {
            waiters.removeFirst().continuation.resume(returning: job)
        }
    }

    private func takeEligible() -> DeliveryJob? {
        guard let index = pending.firstIndex(where: { activePerDomain[$0.domain, default: 0] < maximumPerDomain }) else { return nil }
        let job = pending.remove(at: index)
        activePerDomain[job.domain, default: 0] += 1
        return job
    }
}
