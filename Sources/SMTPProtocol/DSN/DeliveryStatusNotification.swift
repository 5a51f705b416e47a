import NIOCore

/// A delivery status notification (RFC 3464): the bounce, delay warning or success notice a relay sends
/// to a message's return path, rendered as a `multipart/report` message (RFC 6522) of three parts:
///
/// 1. `text/plain`: what happened, for people;
/// 2. `message/delivery-status`: the same for programs (RFC 3464 §2);
/// 3. the original message, whole as `message/rfc822` when the sender asked for `RET=FULL`, otherwise
///    its header section as `text/rfc822-headers` (RFC 3461 §4.3, RFC 6522 §4).
///
/// A notification with non-ASCII text in its status fields (an internationalized address) uses
/// `message/global-delivery-status` instead, and an original with non-ASCII header fields is returned as
/// `message/global` or `message/global-headers` (RFC 6533 §6, RFC 6532 §3.7). Parts with 8-bit octets
/// are marked `Content-Transfer-Encoding: 8bit`; see ``requires8BitMIME``.
///
/// The value is pure: the caller supplies the dates, the Message-ID and the MIME boundary.
public struct DeliveryStatusNotification: Sendable {
    /// This relay, `dns; relay.example.net` (RFC 3464 §2.2.2); a bare host name is given the `dns`
    /// type. Its host is also the domain of the `From: MAILER-DAEMON@…` address.
    public var reportingMTA: String
    /// The `ENVID` parameter of `MAIL FROM` as stored, in xtext; `Original-Envelope-Id` shows it decoded
    /// (RFC 3461 §4.4, RFC 3464 §2.2.1).
    public var envelopeID: String?
    /// When the relay accepted the message (RFC 3464 §2.2.5 `Arrival-Date`), in seconds since 1970.
    public var arrivalSeconds: Int64
    /// Where the notification goes: the message's return path (RFC 5321 §4.5.5), `sender@example.com`.
    public var recipientOfReport: String
    public var recipients: [RecipientDeliveryStatus]
    /// The message as queued: header section, empty line, body, with CRLF line endings.
    public var originalMessage: ByteBuffer
    /// `RET=FULL`: return the whole message. Otherwise (`RET=HDRS`, or no `RET`) only its header section.
    public var returnsFullMessage: Bool
    /// The notification's own Message-ID, without angle brackets: `id@relay.example.net`.
    public var messageID: String
    /// The notification's `Date:`, in seconds since 1970.
    public var dateSeconds: Int64
    /// The `multipart/report` boundary: 1 to 70 characters of RFC 2046 §5.1.1 `bchars`, which must not
    /// occur in the original message (see ``isBoundaryUsable``).
    public var boundary: String

    public init(
        reportingMTA: String,
        envelopeID: String? = nil,
        arrivalSeconds: Int64,
        recipientOfReport: String,
        recipients: [RecipientDeliveryStatus],
        originalMessage: ByteBuffer,
        returnsFullMessage: Bool = false,
        messageID: String,
        dateSeconds: Int64,
        boundary: String
    ) {
        self.reportingMTA = reportingMTA
        self.envelopeID = envelopeID
        self.arrivalSeconds = arrivalSeconds
        self.recipientOfReport = recipientOfReport
        self.recipients = recipients
        self.originalMessage = originalMessage
        self.returnsFullMessage = returnsFullMessage
        self.messageID = messageID
        self.dateSeconds = dateSeconds
        self.boundary = boundary
    }

    /// What the notification is about, which decides its subject.
    public enum Kind: Sendable {
        /// At least one recipient failed.
        case failure
        /// None failed and at least one is delayed.
        case delay
        /// All were delivered, relayed or expanded.
        case success
    }

    public var kind: Kind {
        if recipients.contains(where: { $0.action == .failed }) { return .failure }
        if recipients.contains(where: { $0.action == .delayed }) { return .delay }
        return .success
    }

    public var subject: String {
        switch kind {
        case .failure: "Undelivered Mail Returned to Sender"
        case .delay: "Delayed Mail (still being retried)"
        case .success: "Successful Mail Delivery Report"
        }
    }

    /// `true` when the rendered message has 8-bit octets in its body, so it must be sent with
    /// `BODY=8BITMIME` (RFC 6152 §2). (Its header fields are 8-bit only when the return path or the
    /// reporting host is, which needs `SMTPUTF8` and the caller knows.)
    public var requires8BitMIME: Bool {
        let parts = parts()
        return parts.explanationIs8Bit || parts.deliveryStatusIs8Bit || parts.originalIs8Bit
    }

    /// `true` when ``boundary`` is valid (RFC 2046 §5.1.1) and `--boundary` does not occur in the part of
    /// the original message that the notification includes. Generate another boundary when it is not:
    /// the first two parts are written so that none of their lines can start with `--`.
    public var isBoundaryUsable: Bool {
        let bchars = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ".unicodeScalars)
        guard (1...70).contains(boundary.unicodeScalars.count),
              boundary.unicodeScalars.allSatisfy(bchars.contains),
              !boundary.hasSuffix(" ") else { return false }
        let delimiter = Array(("--" + boundary).utf8)
        return includedOriginal().withUnsafeReadableBytes { bytes in
            guard bytes.count >= delimiter.count else { return true }
            for start in 0...(bytes.count - delimiter.count) where bytes[start] == delimiter[0] {
                if delimiter.indices.allSatisfy({ bytes[start + $0] == delimiter[$0] }) { return false }
            }
            return true
        }
    }

    /// The whole message: header fields, then the `multipart/report` body (RFC 6522), CRLF line endings
    /// throughout, no line longer than 998 octets (RFC 5322 §2.1.1) but those of the original message.
    public func render() -> ByteBuffer {
        let parts = parts()
        let is8Bit = parts.explanationIs8Bit || parts.deliveryStatusIs8Bit || parts.originalIs8Bit
        let host = DSNText.untyped(reportingMTA)
        var messageID = DSNText.singleLine(messageID)
        if messageID.hasPrefix("<"), messageID.hasSuffix(">"), messageID.count >= 2 {
            messageID = String(messageID.dropFirst().dropLast())
        }

        var header = ""
        header += DSNText.field("From", "Mail Delivery System <MAILER-DAEMON@\(host)>")
        header += DSNText.field("To", "<\(DSNText.bareAddress(recipientOfReport))>")
        header += DSNText.field("Subject", subject)
        header += DSNText.field("Date", InternetDate.format(secondsSince1970: dateSeconds))
        header += DSNText.field("Message-ID", "<\(messageID)>")
        header += DSNText.field("MIME-Version", "1.0")
        // RFC 3834 §5: an automatic response, which nobody should answer automatically.
        header += DSNText.field("Auto-Submitted", "auto-replied")
        header += DSNText.field(
            "Content-Type",
            "multipart/report; report-type=\(parts.deliveryStatusType.dropFirst("message/".count)); boundary=\"\(boundary)\""
        )
        // RFC 2045 §6.4: a multipart entity is labelled with the widest encoding of its parts.
        if is8Bit { header += DSNText.field("Content-Transfer-Encoding", "8bit") }
        header += "\r\n"
        header += "This is a MIME-encapsulated message.\r\n"

        var output = ByteBuffer()
        output.reserveCapacity(header.utf8.count + parts.explanation.utf8.count + parts.deliveryStatus.utf8.count
                               + parts.original.readableBytes + 1024)
        output.writeString(header)

        // RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter, so each part's own last
        // CRLF is followed by another.
        output.writeString("\r\n--\(boundary)\r\n")
        output.writeString(DSNText.field("Content-Description", "Notification"))
        output.writeString(DSNText.field("Content-Type", "text/plain; charset=utf-8"))
        if parts.explanationIs8Bit { output.writeString(DSNText.field("Content-Transfer-Encoding", "8bit")) }
        output.writeString("\r\n")
        output.writeString(parts.explanation)

        output.writeString("\r\n--\(boundary)\r\n")
        output.writeString(DSNText.field("Content-Description", "Delivery report"))
        output.writeString(DSNText.field("Content-Type", parts.deliveryStatusType))
        if parts.deliveryStatusIs8Bit { output.writeString(DSNText.field("Content-Transfer-Encoding", "8bit")) }
        output.writeString("\r\n")
        output.writeString(parts.deliveryStatus)

        output.writeString("\r\n--\(boundary)\r\n")
        let description = switch kind {
        case .failure: "Undelivered Message"
        case .delay: "Delayed Message"
        case .success: "Message"
        }
        output.writeString(DSNText.field("Content-Description", description + (returnsFullMessage ? "" : " Headers")))
        output.writeString(DSNText.field("Content-Type", parts.originalType))
        if parts.originalIs8Bit { output.writeString(DSNText.field("Content-Transfer-Encoding", "8bit")) }
        output.writeString("\r\n")
        var original = parts.original
        output.writeBuffer(&original)
        if !parts.original.readableBytesView.isEmpty, !parts.original.readableBytesView.reversed().starts(with: [.lf, .cr]) {
            output.writeString(parts.original.readableBytesView.last == .cr ? "\n" : "\r\n")
        }

        output.writeString("\r\n--\(boundary)--\r\n")
        return output
    }

    // MARK: - Parts

    struct Parts {
        var explanation: String
        var explanationIs8Bit: Bool
        var deliveryStatus: String
        var deliveryStatusType: String
        var deliveryStatusIs8Bit: Bool
        var original: ByteBuffer
        var originalType: String
        var originalIs8Bit: Bool
    }

    func parts() -> Parts {
        let explanation = DSNExplanation.text(for: self)
        let deliveryStatus = deliveryStatusFields()
        let statusIsASCII = DSNText.isASCII(deliveryStatus)
        let original = includedOriginal()
        let originalIs8Bit = Self.has8BitOctets(original)
        let headersAreInternational = returnsFullMessage
            ? Self.has8BitOctets(HeaderSectionScanner.headerSection(of: original))
            : originalIs8Bit
        let originalType = switch (returnsFullMessage, headersAreInternational) {
        case (true, false): "message/rfc822"
        case (true, true): "message/global"
        case (false, false): "text/rfc822-headers"
        case (false, true): "message/global-headers"
        }
        return Parts(
            explanation: explanation,
            explanationIs8Bit: !DSNText.isASCII(explanation),
            deliveryStatus: deliveryStatus,
            deliveryStatusType: statusIsASCII ? "message/delivery-status" : "message/global-delivery-status",
            deliveryStatusIs8Bit: !statusIsASCII,
            original: original,
            originalType: originalType,
            originalIs8Bit: originalIs8Bit
        )
    }

    /// The part of the original message the notification returns (RFC 3461 §4.3).
    func includedOriginal() -> ByteBuffer {
        returnsFullMessage ? originalMessage : HeaderSectionScanner.headerSection(of: originalMessage)
    }

    /// The `message/delivery-status` content (RFC 3464 §2.1): the per-message fields, then for each
    /// recipient an empty line and its fields, each field in the order of the RFC 3464 §2.2 and §2.3
    /// grammar.
    func deliveryStatusFields() -> String {
        var text = ""
        if let envelopeID {
            let decoded = DSNText.singleLine(XText.decode(DSNText.singleLine(envelopeID)))
            if !decoded.isEmpty { text += DSNText.field("Original-Envelope-Id", decoded) }
        }
        text += DSNText.field("Reporting-MTA", DSNText.typedValue(reportingMTA, defaultType: "dns"))
        text += DSNText.field("Arrival-Date", InternetDate.format(secondsSince1970: arrivalSeconds))
        for recipient in recipients {
            text += "\r\n"
            if let original = recipient.originalRecipient.map(DSNText.singleLine), !original.isEmpty {
                let (type, address) = DSNText.typed(original) ?? ("rfc822", original[...])
                text += DSNText.field("Original-Recipient", "\(type); \(DSNText.singleLine(XText.decode(String(address))))")
            }
            text += DSNText.field("Final-Recipient", Self.finalRecipientValue(recipient.finalRecipient))
            text += DSNText.field("Action", recipient.action.rawValue)
            text += DSNText.field("Status", recipient.status.description)
            if let remoteMTA = recipient.remoteMTA, !DSNText.singleLine(remoteMTA).isEmpty {
                text += DSNText.field("Remote-MTA", DSNText.typedValue(remoteMTA, defaultType: "dns"))
            }
            if let diagnosticCode = recipient.diagnosticCode, !DSNText.singleLine(diagnosticCode).isEmpty {
                text += DSNText.field("Diagnostic-Code", DSNText.typedValue(diagnosticCode, defaultType: "smtp"))
            }
            if let seconds = recipient.lastAttemptSeconds {
                text += DSNText.field("Last-Attempt-Date", InternetDate.format(secondsSince1970: seconds))
            }
            if let seconds = recipient.willRetryUntilSeconds {
                text += DSNText.field("Will-Retry-Until", InternetDate.format(secondsSince1970: seconds))
            }
        }
        return text
    }

    /// `rfc822; user@example.com`, or `utf-8; …` for an internationalized address (RFC 6533 §3).
    static func finalRecipientValue(_ recipient: String) -> String {
        let line = DSNText.singleLine(recipient)
        if let (type, value) = DSNText.typed(line) { return "\(type); \(value)" }
        let address = DSNText.bareAddress(line)
        return DSNText.isASCII(address) ? "rfc822; \(address)" : "utf-8; \(DSNText.unitext(address))"
    }

    static func has8BitOctets(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { $0.contains(where: { $0 >= 0x80 }) }
    }
}
