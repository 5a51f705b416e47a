import Foundation
import LogEvents
import MailQueue
import SMTPProtocol

/// What ``DeliveryPolicy`` decided about one job's attempt: each recipient's fate, the notice its sender
/// is owed, and whether the message now counts as warned of delay. The scheduler only performs it.
struct DeliveryDecision: Hashable, Sendable {
    /// A recipient's fate after the attempt.
    enum Outcome: Hashable, Sendable {
        case delivered
        case deferred(nextAttemptAt: Date)
        /// A permanent failure: a `5xx` reply, or a local error that rules delivery out (NXDOMAIN, null MX).
        case failed
        /// Still failing temporarily when the message's lifetime ran out: the relay gives up.
        case expired

        /// The word the delivery log uses: `status=sent`.
        var logStatus: DeliveryAttemptEvent.Status {
            switch self {
            case .delivered: .sent
            case .deferred: .deferred
            case .failed: .bounced
            case .expired: .expired
            }
        }
    }

    struct Recipient: Hashable, Sendable {
        var recipient: DeliveryJob.Recipient
        var outcome: Outcome
        /// What the attempt ended with, stored as the recipient's last result.
        var result: AttemptResult
        /// The relay's verdict (RFC 3463), whose class always agrees with the outcome: `2` delivered, `4`
        /// deferred, `5` failed or expired. The result's own code may differ (see ``DeliveryPolicy``).
        var status: EnhancedStatusCode
        /// The status block the sender is owed for this result, if any (RFC 3461 §4.1 NOTIFY).
        var notice: RecipientDeliveryStatus?
    }

    var recipients: [Recipient]
    /// A delay warning goes out in this round: the message is not warned again.
    var isDelayWarned: Bool

    var hasDeferrals: Bool {
        recipients.contains { if case .deferred = $0.outcome { true } else { false } }
    }

    /// The results as the queue writes them.
    func results(attemptedAt now: Date) -> [RecipientResult] {
        recipients.map { entry in
            let disposition: RecipientResult.Disposition
            switch entry.outcome {
            case .delivered: disposition = .delivered
            case .deferred(let next): disposition = .deferred(nextAttemptAt: next)
            case .failed, .expired: disposition = .failed
            }
            return RecipientResult(recipientID: entry.recipient.id, disposition: disposition, result: entry.result,
                                   attemptedAt: now, notice: entry.notice)
        }
    }
}
