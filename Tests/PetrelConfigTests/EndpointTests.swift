import Testing
@testable import PetrelConfig

/// The one endpoint reading: name servers, next hops and listen addresses.
struct EndpointTests {
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
    func parsesNameServers(_ fixture: Case) {
        let parsed = PetrelConfiguration.HostPort(nameServer: fixture.text)
        #expect(parsed?.host == fixture.host)
        if fixture.host != nil {
            #expect(parsed?.port == fixture.port)
        }
    }


    static let hops: [(String, String?)] = [
        ("smtp.example.net:587", "smtp.example.net:587"),
        ("MAIL.Example.NET", "mail.example.net:25"),
        ("10.0.0.5:25", "10.0.0.5:25"),
        ("[2001:db8::25]:2525", "[2001:db8::25]:2525"),
        ("2001:db8::25", "[2001:db8::25]:25"),
        ("[2001:db8::25]", "[2001:db8::25]:25"),
        ("host:0", nil),
        ("host:", nil),
        ("ho st:25", nil),
        ("user@host:25", nil),
        ("[10.0.0.5]:25", nil),
        ("", nil),
        (":25", nil),
    ]

    @Test(arguments: hops)
    func parsesNextHops(text: String, expected: String?) {
        #expect(PetrelConfiguration.HostPort(text, defaultPort: 25)?.description == expected)
    }

    static let listenAddresses: [(String, String?)] = [
        ("127.0.0.1:2525", "127.0.0.1:2525"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("[::1]:2525", "[::1]:2525"),
        ("::1:2525", nil),
        ("[127.0.0.1]:2525", nil),
        ("127.0.0.1", nil),
        ("localhost:25", nil),
        ("[::ffff:127.0.0.1]:25", nil),
        ("127.0.0.1:65536", nil),
    ]

    @Test(arguments: listenAddresses)
    func parsesListenAddresses(text: String, expected: String?) {
        #expect(ListenAddress(text)?.description == expected)
    }
}
