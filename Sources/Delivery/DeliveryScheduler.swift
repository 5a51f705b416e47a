import Foundation
import DNSResolver
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
public final class DeliveryScheduler: Service, DeliveryHandoff, Sendable {
    private let store: QueueStore
    private let settings: DeliverySettings
    private let logger: Logger
    private let owner: String
    private let ownerPrefix: String
    private let doorbell = Doorbell()
    private let feeder = NIOLockedValueBox(FeederState())

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
    private let attempts: NIOLockedValueBox<DeliveryAttempt>
    private let resolver: any DNSResolving
    private let tlsFailures = TLSFailureMemory()
    private let notifications: NotificationFactory
    /// The queue's writer: results share transactions (and fsyncs) with each other and with arrivals.
    private let committer: GroupCommitter

    /// Attaches itself to `committer`, which then hands fresh mail over (see ``DeliveryHandoff``). The
    /// committer must run for as long as this scheduler does (start it first, stop it after).
    public init(store: QueueStore, committer: GroupCommitter, settings: DeliverySettings, resolver: any DNSResolving, logger: Logger) {
        self.store = store
        self.committer = committer
        self.settings = settings
        self.logger = logger
        self.ownerPrefix = "\(settings.hostname):"
        self.owner = "\(settings.hostname):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
        self.dispatcher = JobDispatcher(capacity: settings.workers * 2, maximumPerDomain: settings.maximumConnectionsPerDomain)
        self.resolver = resolver
        self.attempts = NIOLockedValueBox(Self.makeAttempt(settings, resolver: resolver, cache: cache, tlsFailures: tlsFailures, logger: logger))
        self.notifications = NotificationFactory(hostname: settings.hostname, lifetime: settings.maximumQueueLifetime)
        committer.attach(self)
    }

    private static func makeAttempt(
        _ settings: DeliverySettings, resolver: any DNSResolving, cache: ConnectionCache, tlsFailures: TLSFailureMemory, logger: Logger
    ) -> DeliveryAttempt {
        let router = Router(routes: settings.routes, smarthost: settings.smarthost, mxPort: settings.mxPort, resolver: resolver)
        var attempt = DeliveryAttempt(
            router: router, cache: cache, heloName: settings.hostname, timeouts: settings.timeouts, maximumConnections: 5,
            tlsPolicy: settings.tls, smarthostTLSPolicy: settings.smarthostTLS, smarthostCredentials: settings.smarthostCredentials,
            opportunisticTLS: settings.opportunisticTLS, verifiedTLS: settings.verifiedTLS,
            tlsFailures: tlsFailures
        )
        attempt.log = { line in logger.notice("\(line)") }
        return attempt
    }

    /// A reload: routes, smarthost, TLS policies, credentials and timeouts apply to the next job.
    /// (The worker count and per-domain limit stay as they were until a restart.)
    public func update(settings: DeliverySettings) {
        let attempt = Self.makeAttempt(settings, resolver: resolver, cache: cache, tlsFailures: tlsFailures, logger: logger)
        attempts.withLockedValue { $0 = attempt }
    }

    public func run() async throws {
        let released = try await store.releaseLeases(ownerPrefix: ownerPrefix, except: owner, now: Date())
        if released > 0 {
            logger.notice("released \(released) recipient leases held by an earlier run; they are due now")
        }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<settings.workers {
                    group.addTask { await self.work() }
                }
                group.addTask { await self.feed() }
            }
        } onGracefulShutdown: {
            Task {
                await self.stopDispatching()
                self.doorbell.ring()
            }
            self.doorbell.ring()
        }
        await cache.closeAll()
        logger.info("delivery stopped")
    }

    // MARK: - Fresh mail from the group commit

    public func reserve(messages count: Int) -> DeliveryLease? {
        if feeder.withLockedValue({ $0.hasBacklog }) { return nil }
        let granted = dispatcher.reserve(upTo: count)
        guard granted > 0 else { return nil }
        return DeliveryLease(owner: owner, expiresAt: Date().addingTimeInterval(Self.seconds(settings.lease)),
                             messages: granted, recipientsPerJob: settings.maximumRecipientsPerTransaction)
    }

    public func committed(_ jobs: [DeliveryJob], lease: DeliveryLease?, unleasedMessages: Int) {
        if let lease {
            let refused = dispatcher.add(jobs, reserved: lease.messages)
            if !refused.isEmpty {
                // Shutting down: due again now, for the next run.
                Task { try? await store.releaseLeases(recipientIDs: refused, now: Date()) }
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

    private func stopDispatching() async {
        let unstarted = dispatcher.shutDown()
        do {
            try await store.releaseLeases(recipientIDs: unstarted, now: Date())
        } catch {
            logger.error("could not release leases at shutdown; they will run out by themselves", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Feeding

    /// Claims due work whenever the dispatcher has room; sleeps until the next recipient falls due.
    private func feed() async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let room = dispatcher.room
            if room == 0 {
                if await isStopping() { return }
                feeder.withLockedValue { $0.isWaitingForRoom = true }
                // A job that finished before the flag was up rang no bell: look once more.
                if dispatcher.room == 0 { await doorbell.wait(timeout: .milliseconds(200)) }
                feeder.withLockedValue { $0.isWaitingForRoom = false }
                continue
            }
            let batchesBeforeClaim = feeder.withLockedValue { $0.unleasedBatches }
            do {
                let jobs = try await store.claimDueWork(
                    owner: owner, now: Date(), lease: settings.lease,
                    limit: min(room * 4, 1000), recipientsPerJob: settings.maximumRecipientsPerTransaction
                )
                if !jobs.isEmpty {
                    let refused = dispatcher.add(jobs)
                    if !refused.isEmpty { try await store.releaseLeases(recipientIDs: refused, now: Date()) }
                    continue
                }
                // Nothing due is left unclaimed: fresh mail may go straight to the workers again.
                feeder.withLockedValue { if $0.unleasedBatches == batchesBeforeClaim { $0.hasBacklog = false } }
                let nextDue = try await store.nextDueTime()
                let sleep = nextDue.map { min(max(.milliseconds(Int64($0.timeIntervalSinceNow * 1000)), .milliseconds(10)), settings.idlePoll) } ?? settings.idlePoll
                await doorbell.wait(timeout: sleep)
                await cache.sweep()
            } catch where Task.isCancelled {
                return  // shutdown stopped the read: nothing is wrong
            } catch {
                logger.error("cannot read the queue", metadata: ["error": "\(error)"])
                await doorbell.wait(timeout: .seconds(1))
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
        let elapsed = (ContinuousClock.now - started).components
        DeliveryMetrics.duration.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
        if Task.isCancelled, result.outcomes.allSatisfy({ if case .deferred = $0 { true } else { false } }) {
            // Shutdown cut the attempt short: give the recipients back rather than count a failure.
            try? await store.releaseLeases(recipientIDs: job.recipients.map(\.id), now: Date())
            return
        }
        await record(result, for: job, content: content)
    }

    /// Turns outcomes into queue state, notifications and log lines, and writes them in one transaction.
    private func record(_ result: DeliveryAttempt.Result, for job: DeliveryJob, content: StoredContent) async {
        let now = Date()
        var results: [RecipientResult] = []
        var failures: [RecipientDeliveryStatus] = []
        var delays: [RecipientDeliveryStatus] = []
        var relayed: [RecipientDeliveryStatus] = []
        let isExpired = now >= job.expiresAt
        let warnDelay = settings.delayWarning > .zero && job.delayWarnedAt == nil && !job.isNotification
            && now.timeIntervalSince(job.arrivedAt) >= TimeInterval(settings.delayWarning.components.seconds)

        for (recipient, outcome) in zip(job.recipients, result.outcomes) {
            let attempts = recipient.attempts + 1
            var reply = outcome.reply
            let isRemote = result.relay != nil && reply.enhancedCode?.subject != 4 || result.relay != nil
            let disposition: RecipientResult.Disposition
            let status: String
            switch outcome {
            case .delivered:
                disposition = .delivered
                status = "sent"
                if recipient.notify?.contains(.success) == true && !result.remoteSupportsDSN {
                    // RFC 3461 §5.2.2: the next hop does not speak DSN, so we report "relayed" ourselves.
                    relayed.append(NotificationFactory.status(for: recipient, action: .relayed, reply: reply, relay: result.relay, isRemoteReply: true, attemptedAt: now))
                }
            case .failed:
                disposition = .failed
                status = "bounced"
                if recipient.notify.map({ $0.contains(.failure) }) ?? true {
                    failures.append(NotificationFactory.status(for: recipient, action: .failed, reply: reply, relay: result.relay, isRemoteReply: isRemote, attemptedAt: now))
                }
            case .deferred:
                if isExpired {
                    // RFC 3463 4.4.7: the message stayed in the queue too long.
                    let last = reply
                    reply = SMTPReply(550, EnhancedStatusCode(4, 4, 7), "Message expired in the queue after \(attempts) attempts; last error: \(last)")
                    disposition = .failed
                    status = "expired"
                    if recipient.notify.map({ $0.contains(.failure) }) ?? true {
                        var entry = NotificationFactory.status(for: recipient, action: .failed, reply: last, relay: result.relay, isRemoteReply: isRemote, attemptedAt: now)
                        entry.status = EnhancedStatusCode(4, 4, 7)
                        failures.append(entry)
                    }
                } else {
                    disposition = .deferred(nextAttemptAt: now.addingTimeInterval(Self.seconds(settings.retry.delay(afterAttempts: attempts))))
                    status = "deferred"
                    if warnDelay && (recipient.notify.map { $0.contains(.delay) } ?? true) {
                        delays.append(NotificationFactory.status(for: recipient, action: .delayed, reply: reply, relay: result.relay, isRemoteReply: isRemote, attemptedAt: now, retryUntil: job.expiresAt))
                    }
                }
            }
            results.append(RecipientResult(recipientID: recipient.id, disposition: disposition, reply: "\(reply)", relay: result.relay, attemptedAt: now))
            DeliveryMetrics.attempt(status)
            if logger.logLevel <= .info {
                let delay = String(format: "%.1f", now.timeIntervalSince(job.arrivedAt))
                let dsn = reply.enhancedCode?.description ?? "\(reply.code / 100).0.0"
                let tls = result.tls.map { ", tls=\($0)" } ?? ""
                logger.info("\(job.queueID): to=<\(recipient.address)>, relay=\(result.relay ?? "none"), delay=\(delay), attempts=\(attempts)\(tls), dsn=\(dsn), status=\(status) (\(reply))")
            }
        }

        var notices: [IncomingMessage] = []
        if !failures.isEmpty || !delays.isEmpty || !relayed.isEmpty {
            if job.isNotification {
                if !failures.isEmpty {
                    logger.info("\(job.queueID): a notification could not be delivered; it is discarded (no bounce of a bounce)")
                }
            } else if let original = try? await NotificationFactory.text(of: content) {
                for statuses in [failures, delays, relayed] where !statuses.isEmpty {
                    if let notice = notifications.make(for: job, statuses: statuses, original: original, now: now) {
                        notices.append(notice)
                        DeliveryMetrics.notification(statuses[0].action == .failed ? "failure" : statuses[0].action == .delayed ? "delay" : "success")
                        logger.info("\(job.queueID): sender notification \(notice.queueID): \(statuses[0].action.rawValue)")
                    }
                }
            }
        }
        do {
            let removed = try await committer.record(QueueStore.JobRecord(
                results: results, messageID: job.messageID, queueID: job.queueID, notifications: notices, markDelayWarned: delays.isEmpty ? nil : now
            ))
            if removed { logger.info("\(job.queueID): removed") }
            // New notifications are due now, and a deferral may be due before the feeder's next look.
            if !notices.isEmpty || results.contains(where: { if case .deferred = $0.disposition { true } else { false } }) {
                doorbell.ring()
            }
        } catch {
            logger.error("\(job.queueID): cannot record delivery results; the lease will run out and the recipients be retried", metadata: ["error": "\(error)"])
        }
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        let (seconds, attoseconds) = duration.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
