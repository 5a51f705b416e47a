/// Decides, at `RCPT`, whether a recipient may be accepted from this client (RFC 5321 §3.6.1, §7.1).
///
/// A client in the relay networks may send anywhere. Anyone else may send only to the domains we accept
/// mail for, and never through a routing trick that would make us forward the message elsewhere:
/// `user%other@domain`, `user!other@domain`, `"user@other"@domain`, or an address literal. (A source
/// route never gets this far: the path parser drops it, and the mailbox after it is what is checked.)
public struct RelayPolicy: Hashable, Sendable {
    public var clientMayRelay: Bool
    /// Lowercased domain names.
    public var relayDomains: Set<String>

    public init(clientMayRelay: Bool, relayDomains: Set<String>) {
        self.clientMayRelay = clientMayRelay
        self.relayDomains = Set(relayDomains.map { $0.lowercased() })
    }

    public func permits(_ recipient: Mailbox) -> Bool {
        if clientMayRelay { return true }
        if recipient.isAddressLiteral || recipient.hasRoutingInLocalPart { return false }
        return relayDomains.contains(recipient.normalizedDomain)
    }
}
