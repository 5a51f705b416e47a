#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The DNS port (RFC 1035 §4.2).
let defaultDNSPort = 53

/// Parses a name server written as an IP address with an optional port:
///
/// - `"192.0.2.53"` or `"192.0.2.53:5353"` (IPv4);
/// - `"2001:db8::53"`, `"[2001:db8::53]"` or `"[2001:db8::53]:5353"` (IPv6: brackets are needed with a port).
///
/// - Returns: the address as written (without brackets) and the port (53 when absent), or `nil` when the
///   text is not one of those forms: host names, empty parts, ports outside 1...65535, and stray
///   characters are rejected.
public func parseNameServer(_ text: String) -> (host: String, port: Int)? {
    var host: Substring
    var portText: Substring?
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else { return nil }
        host = text[text.index(after: text.startIndex)..<close]
        let rest = text[text.index(after: close)...]
        if !rest.isEmpty {
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        }
        guard isIPv6Address(host) else { return nil }
    } else if text.filter({ $0 == ":" }).count > 1 {
        host = Substring(text)
        guard isIPv6Address(host) else { return nil }
    } else {
        if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = Substring(text)
        }
        guard isIPv4Address(host) else { return nil }
    }
    var port = defaultDNSPort
    if let portText {
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(portText), (1...65_535).contains(value)
        else { return nil }
        port = value
    }
    return (String(host), port)
}

/// A parsed name server as a socket address for `petrel_res_set_nameservers`.
func socketAddress(host: String, port: Int) -> sockaddr_storage? {
    var storage = sockaddr_storage()
    let ok: Bool = withUnsafeMutablePointer(to: &storage) { pointer in
        if isIPv4Address(Substring(host)) {
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                return inet_pton(AF_INET, host, &sin.pointee.sin_addr) == 1
            }
        } else {
            return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                return inet_pton(AF_INET6, host, &sin6.pointee.sin6_addr) == 1
            }
        }
    }
    return ok ? storage : nil
}

private func isIPv4Address(_ text: Substring) -> Bool {
    var address = in_addr()
    // inet_pton (unlike inet_aton) accepts only the dotted-quad form.
    return !text.isEmpty && inet_pton(AF_INET, String(text), &address) == 1
}

private func isIPv6Address(_ text: Substring) -> Bool {
    var address = in6_addr()
    return !text.isEmpty && inet_pton(AF_INET6, String(text), &address) == 1
}
