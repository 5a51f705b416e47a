import NIOCore

/// The header fields the server puts in front of a message it accepts.
public enum TraceHeaders {
    /// The `Received:` field of RFC 5321 §4.4:
    /// `from <helo> ([<verified name> ]<address literal>) by <host> with <protocol> id <queue id> [for <recipient>]; <date>`.
    /// The recipient is named only when there is exactly one, so that a Bcc is not disclosed.
    public static func received(
        client: ClientIdentity, hostname: String, queueID: String, recipients: [EnvelopeRecipient], secondsSince1970: Int64
    ) -> String {
        let literal = client.address.contains(":") ? "[IPv6:\(client.address)]" : "[\(client.address)]"
        // TCP-info (§4.4): the address, after the client's name when reverse DNS gave one that resolves back to it.
        let tcpInfo = client.verifiedName.map { "\(sanitize($0)) \(literal)" } ?? literal
        var field = "Received: from \(sanitize(client.greetingName)) (\(tcpInfo))\r\n"
        field += "\tby \(hostname) (Petrel) with \(client.protocolName)"
        if let tlsDescription = client.tlsDescription { field += " (\(tlsDescription))" }
        if let authenticatedUser = client.authenticatedUser { field += " (authenticated as \(sanitize(authenticatedUser)))" }
        field += " id \(queueID)"
        if recipients.count == 1 {
            field += "\r\n\tfor <\(recipients[0].mailbox)>"
        }
        field += "; \(InternetDate.format(secondsSince1970: secondsSince1970))\r\n"
        return field
    }

    /// The `with` value of the `Received:` field: RFC 3848 §2's `SMTP` after HELO, `ESMTP` after EHLO, with
    /// `S` for TLS and `A` for AUTH (`ESMTPSA`); a transaction with the SMTPUTF8 parameter is `UTF8SMTP`,
    /// `UTF8SMTPS`, `UTF8SMTPA` or `UTF8SMTPSA` instead (RFC 6531 §3.7.3), which only EHLO allows.
    public static func protocolName(isExtended: Bool, isTLS: Bool, isAuthenticated: Bool, isSMTPUTF8: Bool) -> String {
        guard isExtended else { return "SMTP" }
        return (isSMTPUTF8 ? "UTF8SMTP" : "ESMTP") + (isTLS ? "S" : "") + (isAuthenticated ? "A" : "")
    }

    /// The fields a submission lacked, added for a client in the relay networks (RFC 6409 §8.2, §8.3).
    public static func missing(
        _ missing: ServerSession.MissingHeaders, queueID: String, hostname: String, secondsSince1970: Int64
    ) -> String {
        var fields = ""
        if missing.contains(.date) {
            fields += "Date: \(InternetDate.format(secondsSince1970: secondsSince1970))\r\n"
        }
        if missing.contains(.messageID) {
            fields += "Message-ID: <\(queueID)@\(hostname)>\r\n"
        }
        return fields
    }

    /// Keeps a client-supplied name from breaking the header: no controls, no parentheses.
    private static func sanitize(_ text: String) -> String {
        String(text.unicodeScalars.map { scalar -> Character in
            scalar.value < 33 || scalar == "(" || scalar == ")" || scalar.value == 127 ? "_" : Character(scalar)
        })
    }
}
