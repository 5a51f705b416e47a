import MailQueue
import SMTPProtocol

extension AttemptResult {
    /// `550 5.1.1 no such user` as a server's reply from `relay`.
    static func reply(_ text: String, relay: String = "mx.test[127.0.0.2]:25") -> AttemptResult {
        let words = text.split(separator: " ", maxSplits: 2).map(String.init)
        let enhanced = words.count > 1 ? EnhancedStatusCode(Substring(words[1])) : nil
        let rest = words.dropFirst(enhanced == nil ? 1 : 2).joined(separator: " ")
        return .reply(SMTPReply(Int(words[0])!, enhanced, rest), relay: relay)
    }
}

extension RecipientDeliveryStatus {
    /// A failure notice as the delivery policy makes it for a `5xx` reply.
    static func failure(_ address: String, _ reply: String, relay: String = "mx.test[127.0.0.2]:25") -> RecipientDeliveryStatus {
        let result = AttemptResult.reply(reply, relay: relay)
        return RecipientDeliveryStatus(finalRecipient: address, action: .failed, status: result.status, remoteMTA: result.remoteMTA,
                                       diagnosticCode: result.diagnosticCode, lastAttemptSeconds: 1_700_000_000)
    }
}
