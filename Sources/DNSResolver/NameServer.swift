#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
