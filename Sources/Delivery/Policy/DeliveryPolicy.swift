import Foundation
import MailQueue
import SMTPProtocol

/// What an attempt's findings mean for each recipient of a job: delivered, deferred until when, failed,
/// or expired; which notice the sender is owed; whether the delay warning is due. A pure function of the
/// job, the ``AttemptReport``, the time and a random draw for the retry jitter: no clock, no I/O.
///
/// The rules:
/// - A transaction's per-recipient replies decide (RFC 5321 §4.2.1): `2xx` delivered, `4xx` deferred,
///   `5xx` failed. No route is failed when the DNS answer rules delivery out (null MX, NXDOMAIN), else
///   deferred; no host taking the transaction defers every recipient (RFC 5321 §4.5.4.1), whatever the
///   last host said, unless the relay's own error is permanent (class 5: no retry can help).
/// - A deferral at or after the message's expiry is expired instead: `Status: 5.4.7` (RFC 3463 §3.5,
///   "delivery time expired"), because the relay gives up and RFC 3464 §2.3.3 makes that `Action: failed`,
///   whose status is a permanent one (RFC 3463 §2: class 5 "permanent failure", not likely to be resolved
///   by resending). The last result, a `4xx` reply or a local error, stays the diagnostic: RFC 3464 §2.3.6
///   gives the remote server's own words, which are evidence, not the verdict.
/// - So the verdict's class always agrees with the outcome (`2` delivered, `4` deferred, `5` failed and
///   expired), taking the subject and detail from the result; the result is kept as the server said it,
///   or as the local error it was (connection refused, timeouts, DNS, TLS), never dressed as a reply.
/// - Notices follow NOTIFY (RFC 3461 §4.1; none given means FAILURE and DELAY): a failure notice for
///   failed and expired recipients; a delay notice once per message after `delayWarning`; a "relayed"
///   notice for NOTIFY=SUCCESS when the next hop does not speak DSN (RFC 3461 §6.2.2: it will not report
///   the delivery itself). A message with the null reverse path gets none: never a bounce of a bounce
///   (RFC 5321 §4.5.5, RFC 3461 §6.2).
struct DeliveryPolicy: Sendable, Hashable {
    var retry: RetrySchedule
    /// After this long in the queue a deferred message's sender is warned once; `.zero`: never.
    var delayWarning: Duration

    /// - Parameters:
    ///   - now: when the attempt ended.
    ///   - random: in `0..<1`, for the retry jitter (one draw per job: its recipients stay together).
    func decide(_ report: AttemptReport, for job: DeliveryJob, now: Date, random: Double) -> DeliveryDecision {
        let warnsOfDelay = delayWarning > .zero && job.delayWarnedAt == nil && !job.isNotification
            && now.timeIntervalSince(job.arrivedAt) >= delayWarning.inSeconds
        var recipients: [DeliveryDecision.Recipient] = []
        for (index, recipient) in job.recipients.enumerated() {
            let (verdict, result) = Self.finding(report, at: index)
            let outcome: DeliveryDecision.Outcome
            let status: EnhancedStatusCode
            switch verdict {
            case .delivered:
                outcome = .delivered
                status = Self.status(result.status, inClass: 2)
            case .failed:
                outcome = .failed
                status = Self.status(result.status, inClass: 5)
            case .deferred where now >= job.expiresAt:
                outcome = .expired
                status = EnhancedStatusCode(5, 4, 7)
            case .deferred:
                let delay = retry.delay(afterAttempts: recipient.attempts + 1, random: random)
                outcome = .deferred(nextAttemptAt: now.addingTimeInterval(delay.inSeconds))
                status = Self.status(result.status, inClass: 4)
            }
            let notice = job.isNotification ? nil : Self.notice(
                for: recipient, outcome: outcome, result: result, status: status, report: report,
                warnsOfDelay: warnsOfDelay, expiresAt: job.expiresAt, now: now
            )
            recipients.append(.init(recipient: recipient, outcome: outcome, result: result, status: status, notice: notice))
        }
        return DeliveryDecision(recipients: recipients, isDelayWarned: recipients.contains { $0.notice?.action == .delayed })
    }

    private enum Verdict { case delivered, deferred, failed }

    /// What the report says about the recipient at `index`, before expiry is considered.
    private static func finding(_ report: AttemptReport, at index: Int) -> (Verdict, AttemptResult) {
        switch report {
        case .transaction(let outcomes, let relay, _):
            switch outcomes[index] {
            case .delivered(let reply): return (.delivered, .reply(reply, relay: relay))
            case .deferred(let reply): return (.deferred, .reply(reply, relay: relay))
            case .failed(let reply): return (.failed, .reply(reply, relay: relay))
            }
        case .noRoute(let error):
            return (error.isPermanent ? .failed : .deferred, .localError(error))
        case .noHost(.localError(let error)) where error.isPermanent:
            // The relay's own finding that no retry can help (a conversion the message needs and cannot get).
            return (.failed, .localError(error))
        case .noHost(let result):
            return (.deferred, result)
        }
    }

    /// `status` with its class set to `codeClass`: a `554 5.7.1` greeting that defers is `4.7.1`.
    static func status(_ status: EnhancedStatusCode, inClass codeClass: Int) -> EnhancedStatusCode {
        EnhancedStatusCode(codeClass, status.subject, status.detail)
    }

    private static func notice(
        for recipient: DeliveryJob.Recipient, outcome: DeliveryDecision.Outcome, result: AttemptResult, status: EnhancedStatusCode,
        report: AttemptReport, warnsOfDelay: Bool, expiresAt: Date, now: Date
    ) -> RecipientDeliveryStatus? {
        // RFC 3461 §4.1: without NOTIFY, FAILURE and DELAY.
        let notify = recipient.notify ?? [.failure, .delay]
        let action: RecipientDeliveryStatus.Action
        switch outcome {
        case .delivered:
            guard notify.contains(.success), case .transaction(_, _, let remoteSupportsDSN) = report, !remoteSupportsDSN else { return nil }
            action = .relayed
        case .failed, .expired:
            guard notify.contains(.failure) else { return nil }
            action = .failed
        case .deferred:
            guard warnsOfDelay, notify.contains(.delay) else { return nil }
            action = .delayed
        }
        return RecipientDeliveryStatus(
            finalRecipient: recipient.address,
            originalRecipient: recipient.originalRecipient,
            action: action,
            status: status,
            remoteMTA: result.remoteMTA,
            diagnosticCode: result.diagnosticCode,
            lastAttemptSeconds: Int64(now.timeIntervalSince1970),
            willRetryUntilSeconds: action == .delayed ? Int64(expiresAt.timeIntervalSince1970) : nil
        )
    }
}
