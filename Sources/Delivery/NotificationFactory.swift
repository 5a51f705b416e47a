import Foundation
import MailQueue
import NIOCore
import NIOPosix
import SMTPProtocol

/// Makes the delivery status notifications (RFC 3464) the engine sends: bounces, delay warnings and
/// "relayed" notices. A notification is queued like any message, with the null reverse path (RFC 5321
/// §4.5.5), so that it can never itself be bounced.
struct NotificationFactory: Sendable {
    let hostname: String
    let lifetime: Duration

    func make(for job: DeliveryJob, statuses: [RecipientDeliveryStatus], original: ByteBuffer, now: Date) -> IncomingMessage? {
        guard !job.isNotification, !statuses.isEmpty, let returnPath = Self.mailbox(job.reversePath) else { return nil }
        let queueID = QueueID.make(at: now)
        let seconds = Int64(now.timeIntervalSince1970)
        let notification = DeliveryStatusNotification(
            reportingMTA: hostname,
            envelopeID: job.parameters.dsnEnvelopeID,
            arrivalSeconds: Int64(job.arrivedAt.timeIntervalSince1970),
            recipientOfReport: job.reversePath,
            recipients: statuses,
            originalMessage: original,
            returnsFullMessage: job.parameters.dsnReturn == .full,
            messageID: "\(queueID)@\(hostname)",
            dateSeconds: seconds,
            boundary: "\(queueID).\(UInt32.random(in: 0...UInt32.max))/\(hostname)"
        )
        let text = notification.render()
        var parameters = MailParameters()
        if notification.requires8BitMIME { parameters.body = .eightBitMIME }
        parameters.isSMTPUTF8 = returnPath.requiresSMTPUTF8
        let envelope = Envelope(
            reversePath: nil,
            parameters: parameters,
            recipients: [EnvelopeRecipient(mailbox: returnPath)],
            client: ClientIdentity(address: "127.0.0.1", greetingName: hostname, protocolName: "local")
        )
        return IncomingMessage(
            queueID: queueID, envelope: envelope, traceHeaders: ByteBuffer(), content: .inline(text),
            contentSize: text.readableBytes, arrivedAt: now,
            expiresAt: now.addingTimeInterval(TimeInterval(lifetime.components.seconds))
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
        guard let at = address.lastIndex(of: "@"), at != address.startIndex else { return nil }
        return Mailbox(localPart: String(address[..<at]), domain: String(address[address.index(after: at)...]))
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
