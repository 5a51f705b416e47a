import DNSResolver
import PetrelConfig
import SMTPProtocol

/// Where a domain's mail goes, in the order the configuration and DNS decide (RFC 5321 §5.1):
/// `[routes]`, then the smarthost, then the domain's MX hosts by preference (shuffled among equals),
/// or the domain itself when it has address records but no MX (the implicit MX).
public struct Route: Sendable, Hashable {
    /// One host to try, with the addresses it resolved to.
    public struct Host: Sendable, Hashable {
        public var name: String
        public var addresses: [String]
        public var port: Int
    }

    public enum Kind: String, Sendable, Hashable {
        case configured, smarthost, mx, implicitMX
    }

    public var kind: Kind
    public var hosts: [Host]
}

/// Why no route could be found: permanent (bounce) or temporary (retry).
public struct RoutingFailure: Error, Sendable, Hashable {
    public var isPermanent: Bool
    public var reply: SMTPReply

    static func permanent(_ detail: Int, _ text: String) -> RoutingFailure {
        RoutingFailure(isPermanent: true, reply: SMTPReply(550, EnhancedStatusCode(5, 1, detail), text))
    }

    static func temporary(_ text: String) -> RoutingFailure {
        RoutingFailure(isPermanent: false, reply: SMTPReply(451, EnhancedStatusCode(4, 4, 3), text))
    }
}

/// Finds routes: configuration first, DNS through the system resolver last.
public struct Router: Sendable {
    public var routes: [String: PetrelConfiguration.HostPort]
    public var smarthost: PetrelConfiguration.HostPort?
    public var mxPort: Int
    public var resolver: any DNSResolving
    /// How many MX hosts one attempt tries before it defers.
    public var maximumHosts: Int

    public init(routes: [String: PetrelConfiguration.HostPort], smarthost: PetrelConfiguration.HostPort?, mxPort: Int,
                resolver: any DNSResolving, maximumHosts: Int = 5) {
        self.routes = routes
        self.smarthost = smarthost
        self.mxPort = mxPort
        self.resolver = resolver
        self.maximumHosts = maximumHosts
    }

    public func route(for domain: String) async throws(RoutingFailure) -> Route {
        let domain = domain.lowercased()
        if let hop = routes[domain] {
            return Route(kind: .configured, hosts: [try await host(hop.host, port: hop.port)])
        }
        if let smarthost {
            return Route(kind: .smarthost, hosts: [try await host(smarthost.host, port: smarthost.port)])
        }
        if domain.hasPrefix("[") {
            // An address literal (RFC 5321 §4.1.3): deliver to that address.
            let literal = String(domain.dropFirst().dropLast())
            let address = literal.lowercased().hasPrefix("ipv6:") ? String(literal.dropFirst(5)) : literal
            guard IPAddress(address) != nil else { throw .permanent(2, "Bad address literal \(domain)") }
            return Route(kind: .mx, hosts: [Route.Host(name: domain, addresses: [address], port: mxPort)])
        }
        let exchangers: DNSResult<[MXRecord]>
        let started = ContinuousClock.now
        defer { DeliveryMetrics.dnsLookup("mx", nanoseconds: (ContinuousClock.now - started).inNanoseconds) }
        do {
            exchangers = try await resolver.mailExchangers(for: domain)
        } catch {
            throw .temporary("DNS lookup of MX for \(domain) failed: \(error)")
        }
        switch exchangers {
        case .nonexistentDomain:
            throw .permanent(2, "Domain \(domain) does not exist (NXDOMAIN)")
        case .noRecords:
            let implicit = try await host(domain, port: mxPort)
            return Route(kind: .implicitMX, hosts: [implicit])
        case .found(let records):
            if isNullMX(records) {
                // RFC 7505 §3: the domain accepts no mail.
                throw RoutingFailure(isPermanent: true, reply: SMTPReply(556, EnhancedStatusCode(5, 1, 10), "Domain \(domain) does not accept mail (null MX)"))
            }
            var hosts: [Route.Host] = []
            var lastFailure: RoutingFailure?
            for record in orderMailExchangers(records).filter({ !$0.exchange.isEmpty }).prefix(maximumHosts) {
                do {
                    hosts.append(try await host(record.exchange, port: mxPort))
                } catch {
                    lastFailure = error
                }
            }
            guard !hosts.isEmpty else {
                throw lastFailure.map { RoutingFailure(isPermanent: false, reply: $0.reply.asTemporary) }
                    ?? .temporary("No usable MX host for \(domain)")
            }
            return Route(kind: .mx, hosts: hosts)
        }
    }

    /// The addresses of a next hop: an IP address as is, a name through DNS (A and AAAA).
    private func host(_ name: String, port: Int) async throws(RoutingFailure) -> Route.Host {
        if IPAddress(name) != nil {
            return Route.Host(name: name, addresses: [name], port: port)
        }
        let result: DNSResult<[String]>
        let started = ContinuousClock.now
        defer { DeliveryMetrics.dnsLookup("address", nanoseconds: (ContinuousClock.now - started).inNanoseconds) }
        do {
            result = try await resolver.addresses(of: name)
        } catch {
            throw .temporary("DNS lookup of \(name) failed: \(error)")
        }
        switch result {
        case .found(let addresses) where !addresses.isEmpty:
            return Route.Host(name: name, addresses: addresses, port: port)
        case .found, .noRecords:
            throw .permanent(2, "Host \(name) has no address records")
        case .nonexistentDomain:
            throw .permanent(2, "Host or domain \(name) does not exist (NXDOMAIN)")
        }
    }
}

extension SMTPReply {
    /// The same text as a temporary failure, for a problem with one of several hosts.
    var asTemporary: SMTPReply {
        SMTPReply(451, EnhancedStatusCode(4, 4, 3), lines)
    }
}
