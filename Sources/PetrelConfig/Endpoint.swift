/// The one reading of an endpoint, for listen addresses, next hops and name servers: `host`, `host:port`,
/// `[ipv6]`, `[ipv6]:port`, or a bare IPv6 address (which takes no port). Each type then says what its host
/// may be and whether the port may be left out.
enum Endpoint {
    /// The host as written (without brackets), whether it was in brackets, and the port when given;
    /// `nil` for an unclosed bracket, text after it that is not `:port`, or a port that is not 0...65535
    /// in at most five digits.
    static func split(_ text: String) -> (host: Substring, isBracketed: Bool, port: Int?)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (host, true, nil) }
            guard rest.hasPrefix(":"), let port = port(rest.dropFirst()) else { return nil }
            return (host, true, port)
        }
        if text.filter({ $0 == ":" }).count > 1 { return (Substring(text), false, nil) }
        guard let colon = text.firstIndex(of: ":") else { return (Substring(text), false, nil) }
        guard let port = port(text[text.index(after: colon)...]) else { return nil }
        return (text[..<colon], false, port)
    }

    private static func port(_ digits: Substring) -> Int? {
        guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(digits), value <= 65535 else { return nil }
        return value
    }

    /// The host as an IP address: IPv6 in brackets or bare, IPv4 without brackets.
    static func ipAddress(_ host: Substring, isBracketed: Bool) -> IPAddress? {
        guard let address = IPAddress(String(host)) else { return nil }
        if isBracketed || host.contains(":") {
            return host.contains(":") && !address.isIPv4 ? address : nil
        }
        return address.isIPv4 ? address : nil
    }
}

/// A listen address, `ip:port`, with IPv6 in brackets (`[::1]:2525`). Port 0 lets the system choose.
public struct ListenAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard let (host, isBracketed, port) = Endpoint.split(text), let port,
              Endpoint.ipAddress(host, isBracketed: isBracketed) != nil, isBracketed == host.contains(":") else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension PetrelConfiguration {
    /// A next hop given as `host:port`: a name or an IP address (IPv6 in brackets).
    public struct HostPort: Sendable, Equatable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port`, or `host` alone with `defaultPort`; a host name is lowercased.
        public init?(_ text: String, defaultPort: Int? = nil) {
            guard let (host, isBracketed, written) = Endpoint.split(text), let port = written ?? defaultPort,
                  (1...65535).contains(port), !host.isEmpty else { return nil }
            if isBracketed || host.contains(":") {
                guard Endpoint.ipAddress(host, isBracketed: isBracketed) != nil else { return nil }
                self.init(host: String(host), port: port)
            } else {
                guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) else { return nil }
                self.init(host: host.lowercased(), port: port)
            }
        }

        /// A name server (`delivery.dns_servers`): an IP address, with port 53 unless one is given.
        public init?(nameServer text: String) {
            guard let (host, isBracketed, written) = Endpoint.split(text), (written ?? 53) > 0,
                  Endpoint.ipAddress(host, isBracketed: isBracketed) != nil else { return nil }
            self.init(host: String(host), port: written ?? 53)
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }
}
