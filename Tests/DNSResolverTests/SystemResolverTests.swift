import DNSResolver
import PetrelTestSupport
import Testing

/// `SystemResolver` against a real DNS server (dnsmasq on a loopback port).
struct SystemResolverTests {
    static let records: [DNSTestServer.Record] = [
        .mx(domain: "example.test", preference: 10, exchange: "mx1.example.test"),
        .mx(domain: "example.test", preference: 20, exchange: "mx2.example.test"),
        .mx(domain: "example.test", preference: 20, exchange: "MX3.Example.TEST"),
        .mx(domain: "example.test", preference: 30, exchange: "backup.other.test"),
        .a(host: "mx1.example.test", address: "192.0.2.1"),
        .a(host: "both.test", address: "192.0.2.10"),
        .a(host: "both.test", address: "192.0.2.11"),
        .aaaa(host: "both.test", address: "2001:db8::10"),
        .aaaa(host: "v6only.test", address: "2001:db8::3"),
        .a(host: "nomx.test", address: "192.0.2.20"),
        .nullMX(domain: "nullmx.test"),
        .cname(alias: "alias.test", target: "both.test"),
        .servfail(domain: "servfail.test"),
    ]

    static func mx(_ preference: UInt16, _ exchange: String) -> MXRecord {
        MXRecord(preference: preference, exchange: exchange)
    }

    /// A fresh server and a resolver with short timeouts, for one test.
    static func setUp(
        ttl: Int = 300,
        clock: TestClock = TestClock()
    ) throws -> (DNSTestServer, SystemResolver) {
        let server = try DNSTestServer(records: records, ttl: ttl)
        let resolver = try SystemResolver(servers: [server.address], timeout: .seconds(1), attempts: 1, now: clock.nowFunction)
        return (server, resolver)
    }

    // MARK: - MX

    @Test func mailExchangersWithSeveralPreferences() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        let result = try await resolver.mailExchangers(for: "example.test")
        guard case .found(let records) = result else {
            Issue.record("expected MX records, got \(result)")
            return
        }
        #expect(records.count == 4)
        #expect(Set(records) == [
            Self.mx(10, "mx1.example.test"), Self.mx(20, "mx2.example.test"),
            Self.mx(20, "mx3.example.test"), Self.mx(30, "backup.other.test"),
        ])
        #expect(orderMailExchangers(records, shuffle: { $0.sort { $0.exchange < $1.exchange } }) == [
            Self.mx(10, "mx1.example.test"), Self.mx(20, "mx2.example.test"),
            Self.mx(20, "mx3.example.test"), Self.mx(30, "backup.other.test"),
        ])
    }

    @Test func nameAndCaseAreNormalised() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        let result = try await resolver.mailExchangers(for: "EXAMPLE.Test.")
        guard case .found(let records) = result else {
            Issue.record("expected MX records, got \(result)")
            return
        }
        #expect(records.count == 4)
    }

    @Test func aNameWithAnAddressButNoMXHasNoRecords() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        #expect(try await resolver.mailExchangers(for: "nomx.test") == .noRecords)
        #expect(try await resolver.addresses(of: "nomx.test") == .found(["192.0.2.20"]))
    }

    @Test func nullMXIsOneRecordWithTheRootAsExchange() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        let result = try await resolver.mailExchangers(for: "nullmx.test")
        #expect(result == .found([Self.mx(0, "")]))
        if case .found(let records) = result {
            #expect(isNullMX(records))
        }
    }

    @Test func nonexistentDomain() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        #expect(try await resolver.mailExchangers(for: "nope.test") == .nonexistentDomain)
        #expect(try await resolver.mailExchangers(for: "sub.example.test") == .nonexistentDomain)
        #expect(try await resolver.addresses(of: "nope.test") == .nonexistentDomain)
    }

    @Test(arguments: ["", "a..test", String(repeating: "x", count: 64) + ".test"])
    func anImpossibleNameIsNonexistentWithoutAsking(_ name: String) async throws {
        // No server at all: a query would fail temporarily.
        let resolver = try SystemResolver(servers: ["127.0.0.1:9"], timeout: .seconds(1), attempts: 1)
        #expect(try await resolver.mailExchangers(for: name) == .nonexistentDomain)
        #expect(try await resolver.addresses(of: name) == .nonexistentDomain)
    }

    // MARK: - A and AAAA

    @Test func addressesOfAHostWithAAndAAAA() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        let result = try await resolver.addresses(of: "both.test")
        guard case .found(let addresses) = result else {
            Issue.record("expected addresses, got \(result)")
            return
        }
        #expect(addresses.count == 3)
        #expect(addresses.first == "2001:db8::10")
        #expect(Set(addresses.dropFirst()) == ["192.0.2.10", "192.0.2.11"])
    }

    @Test func addressesOfAHostWithOnlyAAAA() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        #expect(try await resolver.addresses(of: "v6only.test") == .found(["2001:db8::3"]))
    }

    @Test func addressesThroughACNAME() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        let result = try await resolver.addresses(of: "alias.test")
        guard case .found(let addresses) = result else {
            Issue.record("expected addresses, got \(result)")
            return
        }
        #expect(Set(addresses) == ["2001:db8::10", "192.0.2.10", "192.0.2.11"])
    }

    @Test func aDomainWithOnlyMXHasNoAddresses() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        #expect(try await resolver.addresses(of: "example.test") == .noRecords)
        #expect(try await resolver.addresses(of: "nullmx.test") == .noRecords)
    }

    // MARK: - Temporary failures

    @Test func aServerThatNeverAnswersIsATemporaryFailureWithinTheTimeout() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        let start = ContinuousClock.now
        let mxError = await #expect(throws: DNSError.self) {
            try await resolver.mailExchangers(for: "servfail.test")
        }
        #expect(mxError?.domain == "servfail.test")
        #expect(mxError?.type == "MX")
        let addressError = await #expect(throws: DNSError.self) {
            try await resolver.addresses(of: "host.servfail.test")
        }
        #expect(addressError?.type == "A/AAAA")
        // One attempt of one second each; the two address lookups run side by side. libresolv's own default
        // (5 s, two attempts) would take 10 s or more per lookup; the margin is for the resolver's threads being
        // shared with the other suites' lookups while the whole suite runs.
        #expect(ContinuousClock.now - start < .seconds(9))
    }

    @Test func refusedIsATemporaryFailure() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        // dnsmasq REFUSES names outside its local domains (it has no upstream).
        let start = ContinuousClock.now
        await #expect(throws: DNSError.self) {
            try await resolver.mailExchangers(for: "example.invalid")
        }
        // An answer, not a timeout: well under the resolver's timeout even on a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(4))
    }

    @Test func aStoppedServerIsATemporaryFailure() async throws {
        let (server, resolver) = try Self.setUp()
        server.stop()
        await #expect(throws: DNSError.self) {
            try await resolver.mailExchangers(for: "example.test")
        }
        await #expect(throws: DNSError.self) {
            try await resolver.addresses(of: "both.test")
        }
    }

    // MARK: - Name servers

    @Test func fallsBackToTheNextServer() async throws {
        let server = try DNSTestServer(records: Self.records)
        defer { server.stop() }
        let deadPort = try DNSTestServer.freePort(ipv6: false)
        let resolver = try SystemResolver(
            servers: ["127.0.0.1:\(deadPort)", server.address], timeout: .seconds(1), attempts: 1
        )
        #expect(try await resolver.addresses(of: "v6only.test") == .found(["2001:db8::3"]))
    }

    @Test func anIPv6NameServer() async throws {
        let server = try DNSTestServer(records: Self.records, listenOnIPv6: true)
        defer { server.stop() }
        let address = try #require(server.ipv6Address)
        let resolver = try SystemResolver(servers: [address], timeout: .seconds(1), attempts: 1)
        #expect(try await resolver.mailExchangers(for: "nullmx.test") == .found([Self.mx(0, "")]))
        #expect(server.log().contains("query[MX] nullmx.test from ::1"))

        // A dead IPv4 server first, then the IPv6 one: both kinds in one server list.
        let deadPort = try DNSTestServer.freePort(ipv6: false)
        let mixed = try SystemResolver(servers: ["127.0.0.1:\(deadPort)", address], timeout: .seconds(1), attempts: 1)
        #expect(try await mixed.addresses(of: "v6only.test") == .found(["2001:db8::3"]))
        #expect(server.log().contains("query[AAAA] v6only.test from ::1"))
    }

    // MARK: - The test server itself

    @Test func theTestServerServesRawRecordsAndAcceptsTXT() async throws {
        let server = try DNSTestServer(records: [
            .raw(name: "raw.test", type: 15, hexData: "0005 00"),
            .txt(name: "raw.test", text: "v=spf1 -all \"quoted\""),
        ])
        defer { server.stop() }
        let resolver = try SystemResolver(servers: [server.address], timeout: .seconds(1), attempts: 1)
        #expect(try await resolver.mailExchangers(for: "raw.test") == .found([Self.mx(5, "")]))
    }

    @Test(arguments: [
        DNSTestServer.Record.a(host: "bad.test", address: "not-an-address"),
        .a(host: "bad.test", address: "2001:db8::1"),
        .aaaa(host: "bad.test", address: "192.0.2.1"),
        .mx(domain: "bad.test", preference: 70_000, exchange: "mx.bad.test"),
        .raw(name: "bad.test", type: -1, hexData: "00"),
    ])
    func theTestServerReportsAnInvalidRecord(_ record: DNSTestServer.Record) {
        #expect(throws: DNSTestServer.Failure.self) {
            try DNSTestServer(records: [record])
        }
    }

    // MARK: - Cache

    @Test func answersAreCachedForTheirTTL() async throws {
        let clock = TestClock()
        let (server, resolver) = try Self.setUp(ttl: 300, clock: clock)
        let first = try await resolver.mailExchangers(for: "example.test")
        let firstAddresses = try await resolver.addresses(of: "both.test")
        server.stop()

        #expect(try await resolver.mailExchangers(for: "example.test") == first)
        #expect(try await resolver.addresses(of: "both.test") == firstAddresses)
        clock.advance(by: .seconds(299))
        #expect(try await resolver.mailExchangers(for: "example.test") == first)

        clock.advance(by: .seconds(2))
        await #expect(throws: DNSError.self) {
            try await resolver.mailExchangers(for: "example.test")
        }
        await #expect(throws: DNSError.self) {
            try await resolver.addresses(of: "both.test")
        }
    }

    @Test func negativeAnswersAreCachedBriefly() async throws {
        let clock = TestClock()
        let (server, resolver) = try Self.setUp(clock: clock)
        #expect(try await resolver.mailExchangers(for: "nope.test") == .nonexistentDomain)
        #expect(try await resolver.mailExchangers(for: "nomx.test") == .noRecords)
        server.stop()

        clock.advance(by: .seconds(59))
        #expect(try await resolver.mailExchangers(for: "nope.test") == .nonexistentDomain)
        #expect(try await resolver.mailExchangers(for: "nomx.test") == .noRecords)

        // The default negative TTL is 60 seconds, however long the records' TTL.
        clock.advance(by: .seconds(2))
        await #expect(throws: DNSError.self) {
            try await resolver.mailExchangers(for: "nope.test")
        }
        await #expect(throws: DNSError.self) {
            try await resolver.mailExchangers(for: "nomx.test")
        }
    }

    @Test func aZeroTTLIsNotCached() async throws {
        let (server, resolver) = try Self.setUp(ttl: 0)
        #expect(try await resolver.addresses(of: "v6only.test") == .found(["2001:db8::3"]))
        server.stop()
        await #expect(throws: DNSError.self) {
            try await resolver.addresses(of: "v6only.test")
        }
    }

    @Test func temporaryFailuresAreNotCached() async throws {
        let (server, resolver) = try Self.setUp()
        let port = server.port
        server.stop()
        await #expect(throws: DNSError.self) {
            try await resolver.mailExchangers(for: "example.test")
        }
        await #expect(throws: DNSError.self) {
            try await resolver.addresses(of: "v6only.test")
        }

        // The same server back on the same port: the failures were not remembered.
        let restarted = try DNSTestServer(records: Self.records, port: port)
        defer { restarted.stop() }
        let result = try await resolver.mailExchangers(for: "example.test")
        guard case .found(let records) = result else {
            Issue.record("expected MX records, got \(result)")
            return
        }
        #expect(records.count == 4)
        #expect(try await resolver.addresses(of: "v6only.test") == .found(["2001:db8::3"]))
    }
}
