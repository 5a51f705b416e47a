#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Names a connecting client from the DNS, the way mail servers trust a name: its address's PTR record
/// (RFC 1035 §3.5, RFC 3596 §2.5) gives a name, and that name's A or AAAA records include the address again
/// ("forward-confirmed reverse DNS"). A PTR record alone proves nothing: whoever holds the address writes it.
public protocol ClientNameResolving: Sendable {
    /// The forward-confirmed name of `address` (IPv4 or IPv6 text), lowercased and without the trailing
    /// dot; `nil` when there is none, none of the PTR names resolves back to the address, or a lookup failed.
    /// Returns at once, with `nil`, when the task is cancelled.
    func verifiedName(of address: String) async -> String?
}

extension SystemResolver: ClientNameResolving {
    /// At most this many PTR names are checked against their addresses.
    static let maximumCheckedNames = 5

    /// The PTR names of `address`, lowercased and without the trailing dot (RFC 1035 §3.3.12). An address
    /// that is not IPv4 or IPv6 text has none (`.nonexistentDomain`). Throws ``DNSError`` on a temporary
    /// failure. Answers are cached for their TTL, negative ones for the resolver's negative TTL.
    public func reverseNames(of address: String) async throws -> DNSResult<[String]> {
        guard let name = reverseLookupName(of: address) else { return .nonexistentDomain }
        switch try await self.lookup(name, .ptr) {
        case .names(let names): return .found(names)
        case .noRecords, .mailExchangers, .addresses: return .noRecords
        case .nonexistentDomain: return .nonexistentDomain
        }
    }

    public func verifiedName(of address: String) async -> String? {
        guard let wanted = addressBytes(address),
              case .found(let names)? = try? await self.reverseNames(of: address) else { return nil }
        // A name that is no host name (RFC 1123 §2.1) is not used, as Postfix does not: it goes into logs and headers.
        for name in names.prefix(Self.maximumCheckedNames) where isHostName(name) {
            guard !Task.isCancelled else { return nil }
            if case .found(let addresses)? = try? await self.addresses(of: name),
               addresses.contains(where: { addressBytes($0) == wanted }) {
                return name
            }
        }
        return nil
    }
}

/// Letters, digits and hyphens in dot-separated labels of 1 to 63 octets, no label starting or ending with a
/// hyphen, 253 octets at most (RFC 1123 §2.1, RFC 952).
func isHostName(_ name: String) -> Bool {
    guard !name.isEmpty, name.utf8.count <= 253 else { return false }
    return name.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy { label in
        (1...63).contains(label.count) && label.first != UInt8(ascii: "-") && label.last != UInt8(ascii: "-")
            && label.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
            }
    }
}

/// The name whose PTR record names `address`: `d.c.b.a.in-addr.arpa` for IPv4 (RFC 1035 §3.5), 32 reversed
/// nibbles and `ip6.arpa` for IPv6 (RFC 3596 §2.5); an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291
/// §2.5.5.2) is looked up as its IPv4 address. `nil` when `address` is neither.
func reverseLookupName(of address: String) -> String? {
    guard let bytes = addressBytes(address) else { return nil }
    if bytes.count == 4 {
        return bytes.reversed().map { String($0) }.joined(separator: ".") + ".in-addr.arpa"
    }
    let digits = Array("0123456789abcdef")
    let nibbles = bytes.reversed().flatMap { [digits[Int($0 & 0x0F)], digits[Int($0 >> 4)]] }
    return nibbles.map { String($0) }.joined(separator: ".") + ".ip6.arpa"
}

/// The 4 or 16 octets of an IPv4 or IPv6 address given as text, so that two spellings of one address compare
/// equal (`2001:DB8::1` and `2001:db8:0::1`); an IPv4-mapped IPv6 address is its IPv4 address.
func addressBytes(_ text: String) -> [UInt8]? {
    var ipv4 = in_addr()
    if inet_pton(AF_INET, text, &ipv4) == 1 {
        return withUnsafeBytes(of: &ipv4) { Array($0) }
    }
    var ipv6 = in6_addr()
    guard inet_pton(AF_INET6, text, &ipv6) == 1 else { return nil }
    let bytes = withUnsafeBytes(of: &ipv6) { Array($0) }
    if bytes.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) {
        return Array(bytes.suffix(4))
    }
    return bytes
}
