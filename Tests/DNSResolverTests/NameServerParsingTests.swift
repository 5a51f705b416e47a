import DNSResolver
import Testing

struct NameServerParsingTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var text: String
        /// `nil` when the text must be rejected.
        var host: String?
        var port: Int = 53
        var testDescription: String { text.debugDescription }
    }

    static let cases: [Case] = [
        Case(text: "127.0.0.1", host: "127.0.0.1"),
        Case(text: "127.0.0.1:5353", host: "127.0.0.1", port: 5353),
        Case(text: "192.0.2.53:53", host: "192.0.2.53"),
        Case(text: "10.0.0.1:1", host: "10.0.0.1", port: 1),
        Case(text: "10.0.0.1:65535", host: "10.0.0.1", port: 65535),
        Case(text: "::1", host: "::1"),
        Case(text: "2001:db8::53", host: "2001:db8::53"),
        Case(text: "[::1]", host: "::1"),
        Case(text: "[::1]:53", host: "::1"),
        Case(text: "[2001:db8::53]:5353", host: "2001:db8::53", port: 5353),
        // Rejected.
        Case(text: "", host: nil),
        Case(text: ":53", host: nil),
        Case(text: "127.0.0.1:", host: nil),
        Case(text: "127.0.0.1:0", host: nil),
        Case(text: "127.0.0.1:65536", host: nil),
        Case(text: "127.0.0.1:99999999999999999999", host: nil),
        Case(text: "127.0.0.1:-1", host: nil),
        Case(text: "127.0.0.1:+53", host: nil),
        Case(text: "127.0.0.1:5x", host: nil),
        Case(text: "127.0.0.1:53:53", host: nil),
        Case(text: "256.0.0.1", host: nil),
        Case(text: "127.1", host: nil),
        Case(text: " 127.0.0.1", host: nil),
        Case(text: "127.0.0.1 ", host: nil),
        Case(text: "localhost", host: nil),
        Case(text: "dns.example.com:53", host: nil),
        Case(text: "[::1", host: nil),
        Case(text: "[::1]:", host: nil),
        Case(text: "[::1]53", host: nil),
        Case(text: "[127.0.0.1]:53", host: nil),
        Case(text: "[]:53", host: nil),
        Case(text: "::g", host: nil),
    ]

    @Test(arguments: cases)
    func parses(_ fixture: Case) {
        let parsed = parseNameServer(fixture.text)
        #expect(parsed?.host == fixture.host)
        if fixture.host != nil {
            #expect(parsed?.port == fixture.port)
        }
    }

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
