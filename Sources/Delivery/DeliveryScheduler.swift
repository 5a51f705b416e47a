import Foundation
import DNSResolver
import LogEvents
import Logging
import MailQueue
import NIOConcurrencyHelpers
import NIOCore
import SMTPProtocol
import ServiceLifecycle

/// The delivery engine as a `Service`: a feeder claims due recipients from the queue under a lease, a
/// fixed pool of workers delivers them (one SMTP transaction per message and domain), and each result is
/// written back durably — delivered, deferred with backoff, or failed with a bounce to the sender.
///
/// Fresh mail skips the claim: the group commit stores it already leased to this scheduler and hands the
/// jobs over (``DeliveryHandoff``), as long as the dispatcher has room; the rest waits for the feeder.
///
/// On SIGTERM it stops claiming, lets deliveries in flight finish, and gives the leases of work it never
/// started back to the queue.
///
/// Every task it makes is a child of ``run()``: the workers and the feeder in one task group, and beside
/// them ``ConnectionTasks``, the group that serves each open outbound connection. `run()` returns only when
/// all of them have ended, so each result a worker got (a next hop's `250` included) has been handed to
/// the ``GroupCommitter``, which the service group stops after this service.
public final class DeliveryScheduler: Service, DeliveryHandoff, Sendable {
    private let store: QueueStore
    private let settings: DeliverySettings
    private let logger: Logger
    private let owner: String
    private let ownerPrefix: String
    private let doorbell = Doorbell()
    private let feeder = NIOLockedValueBox(FeederState())
    /// Recipients of jobs the shutdown handler took back from the dispatcher, whose leases the feeder's task
    /// releases as it ends (the handler cannot wait for a write).
    private let unreleased = NIOLockedValueBox<[Int64]>([])

    /// What the workers and the committer need to know of the feeder, to wake it only when it has work.
    private struct FeederState {
        /// It sleeps because the dispatcher was full: a finished job should wake it.
        var isWaitingForRoom = false
        /// Due mail is stored unleased (it found no room): fresh mail is not handed over until the feeder
        /// has claimed it, so that mail is delivered in order of arrival under overload.
        var hasBacklog = false
        /// Counts the batches stored without a lease: the feeder clears `hasBacklog` only if none came
        /// while it claimed (compare and clear).
        var unleasedBatches = 0
    }
    private let dispatcher: JobDispatcher
    private let cache = ConnectionCache()
    /// Owns the task of every open outbound connection (see ``OutboundConnection``).
    private let connections = ConnectionTasks()
    private let attempts: NIOLockedValueBox<DeliveryAttempt>
    private let resolver: any DNSResolving
    private let tlsFailures: TLSFailureMemory
    private let policy: DeliveryPolicy
    /// How the notifications the policy asks for are made: this relay's name, their lifetime in the queue.
    private let notification: SenderNotification
    /// When the feeder last made the notifications that wait for nothing any more (``QueueStore/sendDueNotices(now:gatheredBefore:)``).
    private let lastNoticeSweep = NIOLockedValueBox(Duration.zero)
    /// The injected time: timers and the dates written to the queue.
    private let time: DeliveryClock
    /// Called after each write of delivery results or of notifications made by the feeder.
    private let afterRecording: @Sendable () -> Void
    /// The queue's writer: results share transactions (and fsyncs) with each other and with arrivals.
    private let committer: GroupCommitter

    /// Attaches itself to `committer`, which then hands fresh mail over (see ``DeliveryHandoff``). The
    /// committer must run for as long as this scheduler does (start it first, stop it after).
    ///
    /// `clock` runs the timers and `wallTime` dates what is written to the queue (leases, retries, expiry);
    /// tests pass a clock they move by hand, and wait on `afterRecording`, called after each write of results.
    public init(
        store: QueueStore, committer: GroupCommitter, settings: DeliverySettings, resolver: any DNSResolving, logger: Logger,
        clock: some Clock<Duration> = ContinuousClock(), wallTime: @escaping @Sendable () -> Date = { Date() },
        afterRecording: @escaping @Sendable () -> Void = {}
    ) {
        self.time = DeliveryClock(clock: clock, date: wallTime)
        self.afterRecording = afterRecording
        self.tlsFailures = TLSFailureMemory(clock: clock)
        self.store = store
        self.committer = committer
        self.settings = settings
        self.logger = logger
        self.ownerPrefix = "\(settings.hostname):"
        self.owner = "\(settings.hostname):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
        self.dispatcher = JobDispatcher(capacity: settings.workers * 2, maximumPerDomain: settings.maximumConnectionsPerDomain)
        self.resolver = resolver
        self.attempts = NIOLockedValueBox(Self.makeAttempt(settings, resolver: resolver, cache: cache, connections: connections,
                                                            tlsFailures: tlsFailures, logger: logger))
        self.policy = DeliveryPolicy(retry: settings.retry, delayWarning: settings.delayWarning)
        self.notification = SenderNotification(reportingMTA: settings.hostname, lifetime: settings.maximumQueueLifetime.inSeconds)
        committer.attach(self)
    }

    private static func makeAttempt(
        _ settings: DeliverySettings, resolver: any DNSResolving, cache: ConnectionCache, connections: ConnectionTasks,
        tlsFailures: TLSFailureMemory, logger: Logger
    ) -> DeliveryAttempt {
        let router = Router(routes: settings.routes, smarthost: settings.smarthost, mxPort: settings.mxPort, resolver: resolver)
        var attempt = DeliveryAttempt(
            router: router, cache: cache, connections: connections, heloName: settings.hostname, timeouts: settings.timeouts, maximumConnections: 5,
            tlsPolicy: settings.tls, smarthostTLSPolicy: settings.smarthostTLS, smarthostCredentials: settings.smarthostCredentials,
            opportunisticTLS: settings.opportunisticTLS, verifiedTLS: settings.verifiedTLS,
            tlsFailures: tlsFailures
        )
        attempt.log = { event in logger.log(.notice, .hop(event)) }
        return attempt
    }

    /// A reload: routes, smarthost, TLS policies, credentials and timeouts apply to the next job.
    /// (The worker count and per-domain limit stay as they were until a restart.)
    public func update(settings: DeliverySettings) {
        let attempt = Self.makeAttempt(settings, resolver: resolver, cache: cache, connections: connections,
                                       tlsFailures: tlsFailures, logger: logger)
        attempts.withLockedValue { $0 = attempt }
    }

    public func run() async throws {
        // Results handed to the committer are written even when the service group is cancelled.
        try await committer.keepingOpen { try await runEngine() }
        logger.info("delivery stopped")
    }

    private func runEngine() async throws {
        let released = try await store.releaseLeases(ownerPrefix: ownerPrefix, except: owner, now: time.date())
        if released > 0 {
            logger.notice("released \(released) recipient leases held by an earlier run; they are due now")
        }
        await withDiscardingTaskGroup { engine in
            engine.addTask { await self.connections.run() }
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    for _ in 0..<settings.workers {
                        group.addTask { await self.work() }
                    }
                    group.addTask {
                        await self.feed()
                        // The feeder ends at shutdown; the leases of jobs no worker started go back.
                        await self.stopDispatching()
                    }
                }
            } onGracefulShutdown: {
                // Workers waiting for a job get none, the feeder wakes up and ends.
                self.unreleased.withLockedValue { $0 += self.dispatcher.shutDown() }
                self.doorbell.ring()
            }
            // Idle connections say QUIT in their own tasks; `engine` waits for every connection's task.
            await cache.closeAll()
            connections.finish()
        }
    }

    // MARK: - Fresh mail from the group commit

    public func reserve(messages count: Int) -> DeliveryLease? {
        if feeder.withLockedValue({ $0.hasBacklog }) { return nil }
        let granted = dispatcher.reserve(upTo: count)
        guard granted > 0 else { return nil }
        return DeliveryLease(owner: owner, expiresAt: time.date().addingTimeInterval(settings.lease.inSeconds),
                             messages: granted, recipientsPerJob: settings.maximumRecipientsPerTransaction)
    }

    public func committed(_ jobs: [DeliveryJob], lease: DeliveryLease?, unleasedMessages: Int) async {
        if let lease {
            let refused = dispatcher.add(jobs, reserved: lease.messages)
            if !refused.isEmpty {
                // Shutting down: due again now, for the next run (in the committer's task, which waits).
                try? await store.releaseLeases(recipientIDs: refused, now: time.date())
            }
        }
        if unleasedMessages > 0 {
            feeder.withLockedValue {
                $0.hasBacklog = true
                $0.unleasedBatches += 1
            }
            doorbell.ring()
        }
    }

    public func cancel(_ lease: DeliveryLease) {
        dispatcher.cancelReservation(lease.messages)
    }

    /// Stops handing out jobs and releases the leases of those never started (also those that the shutdown
    /// handler took from the dispatcher, in ``unreleased``).
    private func stopDispatching() async {
        let unstarted = unreleased.withLockedValue { unreleased in
            defer { unreleased = [] }
            return unreleased
        } + dispatcher.shutDown()
        guard !unstarted.isEmpty else { return }
        do {
            try await store.releaseLeases(recipientIDs: unstarted, now: time.date())
        } catch {
            logger.error("could not release leases at shutdown; they will run out by themselves", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Feeding

    /// Claims due work whenever the dispatcher has room; sleeps until the next recipient falls due.
    private func feed() async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await sendDueNotices()
            let room = dispatcher.room
            if room == 0 {
                if await isStopping() { return }
                feeder.withLockedValue { $0.isWaitingForRoom = true }
                // A job that finished before the flag was up rang no bell: look once more.
                if dispatcher.room == 0 { await doorbell.wait(until: time.now() + .milliseconds(200), on: time) }
                feeder.withLockedValue { $0.isWaitingForRoom = false }
                continue
            }
            let batchesBeforeClaim = feeder.withLockedValue { $0.unleasedBatches }
            do {
                // Claim only what the dispatcher has room for: a claimed job holds its text in memory and
                // its lease runs down while it waits.
                let jobs = try await store.claimDueWork(
                    owner: owner, now: time.date(), lease: settings.lease,
                    limit: min(room, 1000), recipientsPerJob: settings.maximumRecipientsPerTransaction
                )
                if !jobs.isEmpty {
                    let refused = dispatcher.add(jobs)
                    if !refused.isEmpty { try await store.releaseLeases(recipientIDs: refused, now: time.date()) }
                    continue
                }
                // Nothing due is left unclaimed: fresh mail may go straight to the workers again.
                feeder.withLockedValue { if $0.unleasedBatches == batchesBeforeClaim { $0.hasBacklog = false } }
                let nextDue = try await store.nextDueTime()
                // The timer's start is read before the wall time: a clock moved in between only shortens the sleep.
                let sleepStart = time.now()
                let untilDue = nextDue.map { Duration.milliseconds(Int64($0.timeIntervalSince(time.date()) * 1000)) }
                let sleep = untilDue.map { min(max($0, .milliseconds(10)), settings.idlePoll) } ?? settings.idlePoll
                await doorbell.wait(until: sleepStart + sleep, on: time)
                await cache.sweep()
            } catch where Task.isCancelled {
                return  // shutdown stopped the read: nothing is wrong
            } catch {
                logger.error("cannot read the queue", metadata: ["error": "\(error)"])
                await doorbell.wait(until: time.now() + .seconds(1), on: time)
            }
        }
    }

    private func isStopping() async -> Bool {
        dispatcher.room == 0 && gracefulShutdownRequested
    }

    private var gracefulShutdownRequested: Bool {
        Task.isShuttingDownGracefully
    }

    // MARK: - Working

    private func work() async {
        while let job = await dispatcher.next() {
            await deliver(job)
            dispatcher.finished(job)
            // There is room for more work now: a feeder waiting for it need not wait for its next look.
            if feeder.withLockedValue({ $0.isWaitingForRoom }) { doorbell.ring() }
        }
    }

    private func deliver(_ job: DeliveryJob) async {
        let content = job.content
        let started = ContinuousClock.now
        let attempt = attempts.withLockedValue { $0 }
        let result = await attempt.run(job, content: content)
        DeliveryMetrics.duration.recordNanoseconds((ContinuousClock.now - started).inNanoseconds)
        if Task.isCancelled, Self.isCutShort(result.report) {
            // Shutdown cut the attempt short: give the recipients back rather than count a failure.
            try? await store.releaseLeases(recipientIDs: job.recipients.map(\.id), now: time.date())
            return
        }
        await record(result, for: job)
    }

    /// Decides what the attempt means (``DeliveryPolicy``), logs it, and writes it in one transaction with
    /// the notifications it completes.
    private func record(_ result: DeliveryAttempt.Result, for job: DeliveryJob) async {
        let now = time.date()
        let decision = policy.decide(result.report, for: job, now: now, random: Double.random(in: 0..<1))
        log(decision, for: job, result: result, now: now)
        await write(decision, for: job, now: now)
    }

    /// One line per recipient: `ID: to=<bob@x.test>, relay=mx.x.test[192.0.2.1]:25, delay=0.1, attempts=1, dsn=2.0.0, status=sent (250 Ok)`.
    private func log(_ decision: DeliveryDecision, for job: DeliveryJob, result: DeliveryAttempt.Result, now: Date) {
        for entry in decision.recipients {
            DeliveryMetrics.attempt(entry.outcome.logStatus.rawValue)
            logger.log(.info, .deliveryAttempt(DeliveryAttemptEvent(
                queueID: job.queueID, recipient: entry.recipient.address, originalRecipient: entry.recipient.originalRecipient,
                result: entry.result.logged, delay: now.timeIntervalSince(job.arrivedAt), attempts: entry.recipient.attempts + 1,
                tls: result.tls, dsn: entry.status.description, status: entry.outcome.logStatus
            )))
        }
        if job.isNotification, decision.recipients.contains(where: { $0.outcome == .failed || $0.outcome == .expired }) {
            logger.log(.info, .notificationDiscarded(queueID: job.queueID))
        }
    }

    private func write(_ decision: DeliveryDecision, for job: DeliveryJob, now: Date) async {
        do {
            let outcome = try await committer.record(QueueStore.JobRecord(
                results: decision.results(attemptedAt: now), messageID: job.messageID, queueID: job.queueID,
                notification: notification, markDelayWarned: decision.isDelayWarned ? now : nil, recordedAt: now
            ))
            log(outcome.notifications)
            if outcome.isRemoved { logger.log(.info, .messageRemoved(queueID: job.queueID)) }
            // New notifications are due now, and a deferral may be due before the feeder's next look.
            if !outcome.notifications.isEmpty || decision.hasDeferrals {
                doorbell.ring()
            }
        } catch {
            logger.error("\(job.queueID): cannot record delivery results; the lease will run out and the recipients be retried", metadata: ["error": "\(error)"])
        }
        afterRecording()
    }

    /// `ID: sender non-delivery notification: NOTICE-ID`, and the delay and delivery kinds.
    private func log(_ notifications: [QueueStore.MadeNotification]) {
        for made in notifications {
            let kind: SenderNotificationEvent.Kind = switch made.kind {
            case .failure: .failure
            case .delay: .delay
            case .success: .success
            }
            DeliveryMetrics.notification(kind.rawValue)
            logger.log(.info, .senderNotification(SenderNotificationEvent(
                reportedQueueID: made.reportedQueueID, kind: kind, notificationQueueID: made.queueID
            )))
        }
    }

    /// At most once a second: makes the notifications whose round has ended without a result to make them
    /// (a crash, a shutdown), or that have waited longer than ``DeliverySettings/noticeGathering``.
    private func sendDueNotices() async {
        let now = time.now()
        let isDue = lastNoticeSweep.withLockedValue { last in
            guard now - last >= .seconds(1) else { return false }
            last = now
            return true
        }
        guard isDue else { return }
        do {
            let date = time.date()
            let made = try await store.sendDueNotices(now: date, gatheredBefore: date.addingTimeInterval(-settings.noticeGathering.inSeconds))
            log(made)
            if !made.isEmpty {
                afterRecording()
                doorbell.ring()
            }
        } catch {
            logger.error("cannot make the pending sender notifications; they wait for the next look", metadata: ["error": "\(error)"])
        }
    }

    /// Shutdown cancelled the attempt before anything final came of it: every recipient would be deferred.
    private static func isCutShort(_ report: AttemptReport) -> Bool {
        switch report {
        case .transaction(let outcomes, _, _): outcomes.allSatisfy { if case .deferred = $0 { true } else { false } }
        case .noRoute(let error), .noHost(.localError(let error)): !error.isPermanent
        case .noHost(.reply): true
        }
    }
}

private extension AttemptResult {
    /// The result as the delivery log tells it.
    var logged: DeliveryAttemptEvent.Result {
        switch self {
        case .reply(let reply, let relay): .reply(reply.description, relay: relay)
        case .localError(let error): .localError(error.description)
        }
    }
}
