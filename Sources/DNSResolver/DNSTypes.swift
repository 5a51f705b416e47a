/// One mail exchanger of a domain: the RDATA of an MX record (RFC 1035 §3.3.9).
public struct MXRecord: Hashable, Sendable {
    /// Lower values are preferred (RFC 5321 §5.1).
    public var preference: UInt16
    /// The host name of the exchanger, lowercased, without the trailing dot. The root name "." — the
    /// exchange of a null MX (RFC 7505) — is the empty string.
    public var exchange: String

    public init(preference: UInt16, exchange: String) {
        self.preference = preference
        self.exchange = exchange
    }
}

extension MXRecord: CustomStringConvertible {
    public var description: String { "\(preference) \(exchange.isEmpty ? "." : exchange)" }
}

/// The definite outcome of a lookup: the records, or one of the two negative answers of RFC 2308 §2.
///
/// Temporary failures are not results: they are thrown as ``DNSError``.
public enum DNSResult<Value: Sendable>: Sendable {
    /// The name has records of the requested type(s).
    case found(Value)
    /// The name exists but has no records of the requested type(s): "NODATA" (RFC 2308 §2.2).
    /// For MX, the caller falls back to the implicit MX of RFC 5321 §5.1 (the domain's own addresses).
    case noRecords
    /// The name does not exist: "NXDOMAIN", RCODE 3 (RFC 1035 §4.1.1, RFC 2308 §2.1). For mail
    /// delivery this is a permanent failure.
    case nonexistentDomain
}

extension DNSResult: Equatable where Value: Equatable {}
extension DNSResult: Hashable where Value: Hashable {}

/// A temporary failure of a lookup: the server failed (SERVFAIL), refused (REFUSED), sent something
/// unusable, or no answer came in time. Mail delivery retries later (RFC 5321 §4.5.4.1, §5.1).
///
/// Permanent negative answers are never errors: they are ``DNSResult/nonexistentDomain`` and
/// ``DNSResult/noRecords``.
public struct DNSError: Error, Sendable, CustomStringConvertible {
    /// The name that was looked up.
    public var domain: String
    /// The record type asked for: "MX", "A", "AAAA", or "A/AAAA" when both failed.
    public var type: String
    /// What went wrong, for logs and delivery status notifications.
    public var reason: String

    public init(domain: String, type: String, reason: String) {
        self.domain = domain
        self.type = type
        self.reason = reason
    }

    public var description: String {
        "temporary DNS failure looking up \(type) records of \(domain): \(reason)"
    }
}

/// Looks up what SMTP delivery needs from the DNS.
public protocol DNSResolving: Sendable {
    /// MX records for `domain` (RFC 5321 §5.1), in the order the server sent them: sort them with
    /// ``orderMailExchangers(_:shuffle:)`` and check for a null MX with ``isNullMX(_:)``.
    ///
    /// `.noRecords` means the domain exists without MX records: deliver to its own address (the implicit MX).
    /// `.nonexistentDomain` means it does not exist. Throws ``DNSError`` on temporary failure.
    func mailExchangers(for domain: String) async throws -> DNSResult<[MXRecord]>

    /// The IPv6 (AAAA, RFC 3596) and IPv4 (A, RFC 1035) addresses of `host`, as text, IPv6 first.
    ///
    /// `.noRecords` only when the host has neither; `.nonexistentDomain` when either lookup says the name
    /// does not exist. When one type failed temporarily and the other found addresses, returns those;
    /// otherwise a temporary failure throws ``DNSError``.
    func addresses(of host: String) async throws -> DNSResult<[String]>
}
