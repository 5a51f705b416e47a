import Foundation
import NIOCore
import SMTPProtocol

/// A delivery status notification (RFC 3464) made into a message for the queue, addressed to the return
/// path of the message it reports on. It has the null reverse path (RFC 5321 §4.5.5), so that it can
/// never itself be bounced.
///
/// The delivery engine's bounces, delay warnings and "relayed" notices (made from the pending notices of
/// a message, ``QueueStore/sendPendingNotices(messageID:now:in:)``) and the operator's bounces
/// (``QueueStore/perform(_:on:requestedBy:now:report:)``) are all made here.
public struct SenderNotification: Sendable, Equatable {
    /// This relay's host name: the reporting MTA and the domain of `MAILER-DAEMON@…`.
    public var reportingMTA: String
    /// How long the notification may stay in the queue.
    public var lifetime: TimeInterval
    /// Above this many octets, RET=FULL returns only the header section.
    public static let fullReturnLimit = 10 * 1024 * 1024

    public init(reportingMTA: String, lifetime: TimeInterval) {
        self.reportingMTA = reportingMTA
        self.lifetime = lifetime
    }

    /// The message the reports in `statuses` become; `nil` for a message with the null reverse path
    /// (never answer a notification), an unusable return path, or no status to report.
    ///
    /// - Parameters:
    ///   - reversePath: the reported message's return path, `""` for the null path.
    ///   - original: the reported message as queued (trace headers, then the text); with
    ///     `returnsFullMessage` false its header section is enough.
    public func make(
        reversePath: String, envelopeID: String?, returnsFullMessage: Bool, arrivedAt: Date,
        statuses: [RecipientDeliveryStatus], original: ByteBuffer, now: Date
    ) -> IncomingMessage? {
        guard !reversePath.isEmpty, !statuses.isEmpty, let returnPath = Self.mailbox(reversePath) else { return nil }
        let queueID = QueueID.make(at: now)
        let notification = DeliveryStatusNotification(
            reportingMTA: reportingMTA,
            envelopeID: envelopeID,
            arrivalSeconds: Int64(arrivedAt.timeIntervalSince1970),
            recipientOfReport: reversePath,
            recipients: statuses,
            originalMessage: original,
            returnsFullMessage: returnsFullMessage,
            messageID: "\(queueID)@\(reportingMTA)",
            dateSeconds: Int64(now.timeIntervalSince1970),
            boundary: "\(queueID).\(UInt32.random(in: 0...UInt32.max))/\(reportingMTA)"
        )
        let text = notification.render()
        var parameters = MailParameters()
        if notification.requires8BitMIME { parameters.body = .eightBitMIME }
        parameters.isSMTPUTF8 = returnPath.requiresSMTPUTF8
        let envelope = Envelope(
            reversePath: nil,
            parameters: parameters,
            recipients: [EnvelopeRecipient(mailbox: returnPath)],
            client: ClientIdentity(address: "127.0.0.1", greetingName: reportingMTA, protocolName: "local")
        )
        return IncomingMessage(
            queueID: queueID, envelope: envelope, traceHeaders: ByteBuffer(), content: .inline(text),
            contentSize: text.readableBytes, arrivedAt: now, expiresAt: now.addingTimeInterval(lifetime)
        )
    }

    /// `user@example.com` as a mailbox; `nil` without an `@` or a local part.
    public static func mailbox(_ address: String) -> Mailbox? {
        guard let at = address.lastIndex(of: "@"), at != address.startIndex else { return nil }
        return Mailbox(localPart: String(address[..<at]), domain: String(address[address.index(after: at)...]))
    }
}
