/// A mailbox, `Local-part "@" ( Domain / address-literal )` (RFC 5321 §4.1.2), with SMTPUTF8's
/// UTF-8 local parts and domains (RFC 6531 §3.3).
public struct Mailbox: Hashable, Sendable, CustomStringConvertible {
    /// The local part as it was written, quotes and escapes included.
    public var localPart: String
    /// The domain, or the address literal with its brackets (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
    public var domain: String

    public init(localPart: String, domain: String) {
        self.localPart = localPart
        self.domain = domain
    }

    public var description: String { "\(localPart)@\(domain)" }

    // These look at octets, not Characters: a combining mark after `"`, `%`, `!` or `@` makes one grapheme
    // with it, and `hasPrefix` or `contains` on Characters would then not see the ASCII character at all.

    /// `true` when the domain is an address literal (RFC 5321 §4.1.3).
    public var isAddressLiteral: Bool { domain.utf8.first == UInt8(ascii: "[") }

    /// `true` when the local part is a quoted string (RFC 5321 §4.1.2).
    public var isQuoted: Bool { localPart.utf8.first == UInt8(ascii: "\"") }

    /// The domain, lowercased, for routing and policy decisions.
    public var normalizedDomain: String { domain.lowercased() }

    /// `true` when the local part hides another routing step: `%` or `!` (the "percent hack" and
    /// UUCP bang paths) or an `@` inside quotes. A relay must treat such a recipient as a request to
    /// relay elsewhere (RFC 5321 §3.6.1 warns against source-routing tricks).
    public var hasRoutingInLocalPart: Bool {
        localPart.utf8.contains { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "!") || $0 == UInt8(ascii: "@") }
    }

    /// `true` when any part needs SMTPUTF8 (RFC 6531 §3.4).
    public var requiresSMTPUTF8: Bool {
        !localPart.utf8.allSatisfy { $0 < 0x80 } || !domain.utf8.allSatisfy { $0 < 0x80 }
    }
}
