import Foundation
import MailQueue
import NIOCore
import NIOPosix
import SMTPProtocol

/// Makes the delivery status notifications (RFC 3464) the engine sends: bounces, delay warnings and
/// "relayed" notices. A notification is queued like any message, with the null reverse path (RFC 5321
/// §4.5.5), so that it can never itself be bounced; the message itself is made by `SenderNotification`
/// in MailQueue, which the operator's `petrel queue bounce` shares.
struct NotificationFactory: Sendable {
    let hostname: String
    let lifetime: Duration
    /// Above this, RET=FULL returns only the header section.
    static let fullReturnLimit = 10 * 1024 * 1024

    func make(for job: DeliveryJob, statuses: [RecipientDeliveryStatus], original: ByteBuffer, now: Date) -> IncomingMessage? {
        guard !job.isNotification else { return nil }
        return SenderNotification(reportingMTA: hostname, lifetime: TimeInterval(lifetime.components.seconds)).make(
            reversePath: job.reversePath, envelopeID: job.parameters.dsnEnvelopeID,
            // RET=FULL returns the whole message, unless it is large (Postfix's bounce_size_limit idea).
            returnsFullMessage: job.parameters.dsnReturn == .full && original.readableBytes <= Self.fullReturnLimit, arrivedAt: job.arrivedAt,
            statuses: statuses, original: original, now: now
        )
    }

    /// The status block for one recipient of a job.
    static func status(
        for recipient: DeliveryJob.Recipient, action: RecipientDeliveryStatus.Action, reply: SMTPReply,
        relay: String?, isRemoteReply: Bool, attemptedAt: Date, retryUntil: Date? = nil
    ) -> RecipientDeliveryStatus {
        let fallback = EnhancedStatusCode(reply.code / 100, 0, 0)
        return RecipientDeliveryStatus(
            finalRecipient: recipient.address,
            originalRecipient: recipient.originalRecipient,
            action: action,
            status: reply.enhancedCode ?? fallback,
            remoteMTA: isRemoteReply ? relay.map(Self.hostName(ofRelay:)) : nil,
            diagnosticCode: isRemoteReply ? "smtp; \(reply)" : "X-Petrel; \(reply)",
            lastAttemptSeconds: Int64(attemptedAt.timeIntervalSince1970),
            willRetryUntilSeconds: retryUntil.map { Int64($0.timeIntervalSince1970) }
        )
    }

    /// `mx.example[192.0.2.1]:25` → `mx.example`.
    static func hostName(ofRelay relay: String) -> String {
        String(relay.prefix { $0 != "[" })
    }

    static func mailbox(_ address: String) -> Mailbox? {
        SenderNotification.mailbox(address)
    }

    /// The whole stored text of a message, for inclusion in a notification.
    static func text(of content: StoredContent) async throws -> ByteBuffer {
        switch content {
        case .inline(let text):
            return text
        case .spooled(let traceHeaders, let path):
            var text = traceHeaders
            let data = try await NIOThreadPool.singleton.runIfActive { try Data(contentsOf: URL(fileURLWithPath: path)) }
            text.writeBytes(data)
            return text
        }
    }
}
