import Foundation
import MailQueue
import NIOCore
import SMTPProtocol
import Testing
@testable import Delivery

/// The delivery policy is a pure function of the job, the attempt's findings and the time: tables of
/// findings in, fates and notices out.
struct DeliveryPolicyTests {
    static let policy = DeliveryPolicy(retry: RetrySchedule(minimum: .seconds(300), maximum: .seconds(3600), jitter: 0.1), delayWarning: .seconds(4 * 3600))
    static let arrival = Date(timeIntervalSince1970: 1_700_000_000)
    static let relay = "mx.dest.test[192.0.2.1]:25"
    static let refused = LocalError(status: EnhancedStatusCode(4, 4, 1), description: "connect to mx.dest.test[192.0.2.1]:25: Connection refused")

    static func reply(_ code: Int, _ status: EnhancedStatusCode?, _ text: String) -> SMTPReply { SMTPReply(code, status, text) }

    /// One row: what was found, about whom, when; and what must follow.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var report: AttemptReport
        var notify: RecipientParameters.Notify? = nil
        var attempts = 0
        var reversePath = "alice@sender.test"
        /// Seconds since arrival when the attempt ended.
        var age: TimeInterval = 60
        var isDelayWarned = false
        /// The message's lifetime, in seconds since arrival.
        var lifetime: TimeInterval = 5 * 86400
        // Expected:
        var outcome: String
        var status: String
        var notice: RecipientDeliveryStatus.Action? = nil
        var diagnostic: String? = nil
        var remoteMTA: String? = nil
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "250: delivered, nothing to tell", report: .transaction([.delivered(reply(250, EnhancedStatusCode(2, 0, 0), "Ok"))], relay: relay, remoteSupportsDSN: false),
             outcome: "sent", status: "2.0.0"),
        Case(name: "250 with NOTIFY=SUCCESS to a hop without DSN: relayed", report: .transaction([.delivered(reply(250, nil, "Ok"))], relay: relay, remoteSupportsDSN: false),
             notify: [.success], outcome: "sent", status: "2.0.0", notice: .relayed, diagnostic: "smtp; 250 Ok", remoteMTA: "mx.dest.test"),
        Case(name: "250 with NOTIFY=SUCCESS to a hop with DSN: it reports, not we", report: .transaction([.delivered(reply(250, nil, "Ok"))], relay: relay, remoteSupportsDSN: true),
             notify: [.success], outcome: "sent", status: "2.0.0"),
        Case(name: "550: failed, a bounce with the server's reply", report: .transaction([.failed(reply(550, EnhancedStatusCode(5, 1, 1), "User unknown"))], relay: relay, remoteSupportsDSN: true),
             outcome: "bounced", status: "5.1.1", notice: .failed, diagnostic: "smtp; 550 5.1.1 User unknown", remoteMTA: "mx.dest.test"),
        Case(name: "550 without an enhanced code: 5.0.0", report: .transaction([.failed(reply(550, nil, "No"))], relay: relay, remoteSupportsDSN: false),
             outcome: "bounced", status: "5.0.0", notice: .failed, diagnostic: "smtp; 550 No", remoteMTA: "mx.dest.test"),
        Case(name: "550 with NOTIFY=NEVER: no bounce", report: .transaction([.failed(reply(550, EnhancedStatusCode(5, 1, 1), "User unknown"))], relay: relay, remoteSupportsDSN: false),
             notify: .never, outcome: "bounced", status: "5.1.1"),
        Case(name: "550 with NOTIFY=DELAY: no bounce", report: .transaction([.failed(reply(550, EnhancedStatusCode(5, 1, 1), "User unknown"))], relay: relay, remoteSupportsDSN: false),
             notify: [.delay], outcome: "bounced", status: "5.1.1"),
        Case(name: "550 to a null-sender message: never a bounce of a bounce", report: .transaction([.failed(reply(550, EnhancedStatusCode(5, 1, 1), "User unknown"))], relay: relay, remoteSupportsDSN: false),
             reversePath: "", outcome: "bounced", status: "5.1.1"),
        Case(name: "451: deferred, before the delay warning", report: .transaction([.deferred(reply(451, EnhancedStatusCode(4, 7, 1), "Greylisted"))], relay: relay, remoteSupportsDSN: false),
             outcome: "deferred", status: "4.7.1"),
        Case(name: "451 after delay_warning: one delay notice", report: .transaction([.deferred(reply(451, EnhancedStatusCode(4, 7, 1), "Greylisted"))], relay: relay, remoteSupportsDSN: false),
             age: 5 * 3600, outcome: "deferred", status: "4.7.1", notice: .delayed, diagnostic: "smtp; 451 4.7.1 Greylisted", remoteMTA: "mx.dest.test"),
        Case(name: "451 after delay_warning, already warned: none", report: .transaction([.deferred(reply(451, EnhancedStatusCode(4, 7, 1), "Greylisted"))], relay: relay, remoteSupportsDSN: false),
             age: 5 * 3600, isDelayWarned: true, outcome: "deferred", status: "4.7.1"),
        Case(name: "451 after delay_warning with NOTIFY=FAILURE: none", report: .transaction([.deferred(reply(451, EnhancedStatusCode(4, 7, 1), "Greylisted"))], relay: relay, remoteSupportsDSN: false),
             notify: [.failure], age: 5 * 3600, outcome: "deferred", status: "4.7.1"),
        Case(name: "451 after delay_warning to a null-sender message: none", report: .transaction([.deferred(reply(451, EnhancedStatusCode(4, 7, 1), "Greylisted"))], relay: relay, remoteSupportsDSN: false),
             reversePath: "", age: 5 * 3600, outcome: "deferred", status: "4.7.1"),
        Case(name: "451 at expiry: failed with 5.4.7, the last reply as the diagnostic", report: .transaction([.deferred(reply(451, EnhancedStatusCode(4, 3, 0), "Try later"))], relay: relay, remoteSupportsDSN: false),
             attempts: 7, age: 3600, lifetime: 3600, outcome: "expired", status: "5.4.7", notice: .failed, diagnostic: "smtp; 451 4.3.0 Try later", remoteMTA: "mx.dest.test"),
        Case(name: "connection refused: a local error, deferred, no Remote-MTA", report: .noHost(.localError(refused)),
             outcome: "deferred", status: "4.4.1"),
        Case(name: "connection refused at expiry: 5.4.7, an X-Petrel diagnostic, no Remote-MTA", report: .noHost(.localError(refused)),
             attempts: 3, age: 3601, lifetime: 3600, outcome: "expired", status: "5.4.7", notice: .failed,
             diagnostic: "X-Petrel; connect to mx.dest.test[192.0.2.1]:25: Connection refused"),
        Case(name: "connection refused after delay_warning: a delay notice naming no remote MTA", report: .noHost(.localError(refused)),
             age: 5 * 3600, outcome: "deferred", status: "4.4.1", notice: .delayed, diagnostic: "X-Petrel; connect to mx.dest.test[192.0.2.1]:25: Connection refused"),
        Case(name: "a 554 greeting from the last host: deferred, the verdict in class 4", report: .noHost(.reply(reply(554, EnhancedStatusCode(5, 7, 1), "Go away"), relay: relay)),
             age: 5 * 3600, outcome: "deferred", status: "4.7.1", notice: .delayed, diagnostic: "smtp; 554 5.7.1 Go away", remoteMTA: "mx.dest.test"),
        Case(name: "a permanent local error at the host (conversion impossible): failed, no Remote-MTA",
             report: .noHost(.localError(LocalError(status: EnhancedStatusCode(5, 6, 3), description: "conversion to 7bit required but not possible"))),
             outcome: "bounced", status: "5.6.3", notice: .failed, diagnostic: "X-Petrel; conversion to 7bit required but not possible"),
        Case(name: "null MX: failed, a local finding", report: .noRoute(LocalError(status: EnhancedStatusCode(5, 1, 10), description: "Domain dest.test does not accept mail (null MX)")),
             outcome: "bounced", status: "5.1.10", notice: .failed, diagnostic: "X-Petrel; Domain dest.test does not accept mail (null MX)"),
        Case(name: "DNS lookup failed: deferred", report: .noRoute(LocalError(status: EnhancedStatusCode(4, 4, 3), description: "DNS lookup for dest.test failed")),
             outcome: "deferred", status: "4.4.3"),
    ]

    static func job(_ row: Case) -> DeliveryJob {
        DeliveryJob(
            messageID: 1, queueID: "Q", reversePath: row.reversePath, size: 10, arrivedAt: arrival,
            expiresAt: arrival.addingTimeInterval(row.lifetime), delayWarnedAt: row.isDelayWarned ? arrival : nil, domain: "dest.test",
            recipients: [DeliveryJob.Recipient(id: 7, address: "bob@dest.test", originalRecipient: "rfc822;bob@dest.test", notify: row.notify, attempts: row.attempts)],
            content: .inline(ByteBuffer())
        )
    }

    @Test(arguments: cases)
    func decides(_ row: Case) throws {
        let now = Self.arrival.addingTimeInterval(row.age)
        let decision = Self.policy.decide(row.report, for: Self.job(row), now: now, random: 0.5)
        let entry = try #require(decision.recipients.first)
        #expect(decision.recipients.count == 1)
        #expect(entry.outcome.logStatus.rawValue == row.outcome)
        #expect(entry.status.description == row.status)
        #expect(entry.notice?.action == row.notice)
        #expect(entry.notice?.diagnosticCode == row.diagnostic)
        #expect(entry.notice?.remoteMTA == row.remoteMTA)
        #expect(decision.isDelayWarned == (row.notice == .delayed))
        if let notice = entry.notice {
            #expect(notice.status == entry.status)
            #expect(notice.finalRecipient == "bob@dest.test" && notice.originalRecipient == "rfc822;bob@dest.test")
            #expect(notice.lastAttemptSeconds == Int64(now.timeIntervalSince1970))
            #expect(notice.willRetryUntilSeconds == (notice.action == .delayed ? Int64(Self.arrival.timeIntervalSince1970 + row.lifetime) : nil))
        }
    }

    /// The verdict's class always agrees with the fate; a local error is never reported as a server's.
    @Test(arguments: cases)
    func statusClassAgreesWithTheOutcomeAndLocalErrorsNameNoServer(_ row: Case) throws {
        let decision = Self.policy.decide(row.report, for: Self.job(row), now: Self.arrival.addingTimeInterval(row.age), random: 0.5)
        let entry = try #require(decision.recipients.first)
        let expectedClass: Int
        switch entry.outcome {
        case .delivered: expectedClass = 2
        case .deferred: expectedClass = 4
        case .failed, .expired: expectedClass = 5
        }
        #expect(entry.status.codeClass == expectedClass)
        if case .localError = entry.result {
            #expect(entry.result.remoteMTA == nil)
            #expect(entry.result.diagnosticCode.hasPrefix("X-Petrel; "))
        } else {
            #expect(entry.result.diagnosticCode.hasPrefix("smtp; "))
        }
    }

    @Test(arguments: [(0, 300.0), (1, 600.0), (3, 2400.0), (9, 3600.0)])
    func aDeferralFollowsTheRetrySchedule(attemptsBefore: Int, seconds: Double) throws {
        var row = Self.cases[8]
        row.attempts = attemptsBefore
        let now = Self.arrival.addingTimeInterval(60)
        let decision = Self.policy.decide(row.report, for: Self.job(row), now: now, random: 0.5)
        #expect(decision.recipients.first?.outcome == .deferred(nextAttemptAt: now.addingTimeInterval(seconds)))
    }

    /// One attempt's replies go each to its own recipient, in order.
    @Test func eachRecipientGetsItsOwnReply() {
        var job = Self.job(Self.cases[0])
        job.recipients = [
            DeliveryJob.Recipient(id: 1, address: "a@dest.test"), DeliveryJob.Recipient(id: 2, address: "b@dest.test"),
            DeliveryJob.Recipient(id: 3, address: "c@dest.test"),
        ]
        let report = AttemptReport.transaction([
            .delivered(Self.reply(250, nil, "Ok")), .failed(Self.reply(550, EnhancedStatusCode(5, 1, 1), "No")), .deferred(Self.reply(452, EnhancedStatusCode(4, 2, 2), "Full")),
        ], relay: Self.relay, remoteSupportsDSN: false)
        let decision = Self.policy.decide(report, for: job, now: Self.arrival.addingTimeInterval(60), random: 0.5)
        #expect(decision.recipients.map(\.outcome.logStatus.rawValue) == ["sent", "bounced", "deferred"])
        #expect(decision.recipients.map(\.notice?.finalRecipient) == [nil, "b@dest.test", nil])
        #expect(decision.recipients.map(\.status.description) == ["2.0.0", "5.1.1", "4.2.2"])
    }
}
