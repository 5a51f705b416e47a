import DNSResolver
import Testing

/// The resolver takes name servers as `delivery.dns_servers` writes them (parsed by PetrelConfig's
/// `HostPort(nameServer:)`, tested in EndpointTests) and refuses what it cannot use.
struct NameServerParsingTests {
    @Test(arguments: ["localhost", "127.0.0.1:0", "[::1]:"])
    func resolverRejectsAnUnparsableServer(_ text: String) {
        #expect(throws: SystemResolver.ConfigurationError.self) {
            try SystemResolver(servers: [text])
        }
    }

    @Test func resolverRejectsMoreServersThanLibresolvUses() {
        #expect(throws: SystemResolver.ConfigurationError.self) {
            try SystemResolver(servers: ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"])
        }
        #expect(throws: Never.self) {
            try SystemResolver(servers: ["127.0.0.1", "[::1]:5353", "127.0.0.3:53"])
        }
    }
}
