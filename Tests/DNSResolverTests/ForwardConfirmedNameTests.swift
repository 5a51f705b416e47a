import NIOCore
import NIOPosix
import PetrelTestSupport
import Testing
@testable import DNSResolver

/// Reverse DNS (RFC 1035 §3.5, RFC 3596 §2.5) and forward confirmation, against a real DNS server.
struct ForwardConfirmedNameTests {
    static let records: [DNSTestServer.Record] = [
        // An `.a`/`.aaaa` record publishes the PTR record of its address as well.
        .a(host: "mail.example.test", address: "192.0.2.7"),
        .aaaa(host: "six.example.test", address: "2001:db8::7"),
        // A PTR record whose name points elsewhere, and one whose name does not exist.
        .ptr(name: "8.2.0.192.in-addr.arpa", target: "liar.example.test"),
        .a(host: "liar.example.test", address: "192.0.2.99"),
        .ptr(name: "9.2.0.192.in-addr.arpa", target: "gone.example.test"),
        .servfail(domain: "10.2.0.192.in-addr.arpa"),
    ]

    static func setUp(clock: TestClock = TestClock()) throws -> (DNSTestServer, SystemResolver) {
        let server = try DNSTestServer(records: records)
        let resolver = try SystemResolver(servers: [server.address], timeout: .seconds(1), attempts: 1, now: clock.nowFunction)
        return (server, resolver)
    }

    static let reverseNames: [(String, String?)] = [
        ("192.0.2.7", "7.2.0.192.in-addr.arpa"),
        ("::ffff:192.0.2.7", "7.2.0.192.in-addr.arpa"),
        ("2001:db8::7", "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"),
        ("2001:DB8:0::7", "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"),
        ("mail.example.test", nil),
        ("192.0.2", nil),
    ]

    @Test(arguments: reverseNames)
    func reverseLookupNames(address: String, name: String?) {
        #expect(reverseLookupName(of: address) == name)
    }

    static let hostNameCases: [(String, Bool)] = [
        ("mail.example.test", true), ("a", true), ("x-1.b2.test", true), ("MAIL.Example.TEST", true),
        ("", false), ("a..test", false), ("-a.test", false), ("a-.test", false), ("a_b.test", false),
        ("a b.test", false), ("a,status=sent", false), ("a\\(b.test", false), (String(repeating: "x", count: 64) + ".test", false),
    ]

    /// Only a host name is used as the client's name: it goes into log lines and the `Received:` field.
    @Test(arguments: hostNameCases)
    func hostNames(name: String, isHostName expected: Bool) {
        #expect(isHostName(name) == expected)
    }

    @Test func reverseNamesComeFromPTRRecords() async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        #expect(try await resolver.reverseNames(of: "192.0.2.7") == .found(["mail.example.test"]))
        #expect(try await resolver.reverseNames(of: "2001:db8::7") == .found(["six.example.test"]))
        #expect(try await resolver.reverseNames(of: "192.0.2.8") == .found(["liar.example.test"]))
        #expect(try await resolver.reverseNames(of: "192.0.2.50") == .nonexistentDomain)
        #expect(try await resolver.reverseNames(of: "not an address") == .nonexistentDomain)
    }

    static let verified: [(String, String?)] = [
        ("192.0.2.7", "mail.example.test"),
        ("2001:db8::7", "six.example.test"),
        ("2001:DB8:0:0::7", "six.example.test"),
        // The PTR name's addresses do not include the client's: anyone can write a PTR record.
        ("192.0.2.8", nil),
        ("192.0.2.9", nil),
        ("192.0.2.50", nil),
        // The lookup fails (times out): no name, no error.
        ("192.0.2.10", nil),
    ]

    @Test(arguments: verified)
    func forwardConfirmation(address: String, name: String?) async throws {
        let (server, resolver) = try Self.setUp()
        defer { server.stop() }
        #expect(await resolver.verifiedName(of: address) == name)
    }

    @Test func reverseAnswersAreCachedPositiveAndNegative() async throws {
        let clock = TestClock()
        let (server, resolver) = try Self.setUp(clock: clock)
        #expect(await resolver.verifiedName(of: "192.0.2.7") == "mail.example.test")
        #expect(try await resolver.reverseNames(of: "192.0.2.50") == .nonexistentDomain)
        server.stop()

        clock.advance(by: .seconds(59))
        #expect(await resolver.verifiedName(of: "192.0.2.7") == "mail.example.test")
        #expect(try await resolver.reverseNames(of: "192.0.2.50") == .nonexistentDomain)
        // The negative answer lasts the resolver's negative TTL (60 s), the records their TTL (300 s).
        clock.advance(by: .seconds(2))
        await #expect(throws: DNSError.self) { try await resolver.reverseNames(of: "192.0.2.50") }
        #expect(await resolver.verifiedName(of: "192.0.2.7") == "mail.example.test")
        clock.advance(by: .seconds(240))
        #expect(await resolver.verifiedName(of: "192.0.2.7") == nil)
    }

    @Test(.timeLimit(.minutes(1))) func aCancelledLookupReturnsAtOnce() async throws {
        let server = try await SilentNameServer()
        defer { server.stop() }
        // A query that is never answered takes at least 5 s here (two tries, the second after 5 s).
        let resolver = try SystemResolver(servers: [server.address], timeout: .seconds(5), attempts: 2)
        let started = ContinuousClock.now
        let name = await withTaskGroup(of: String?.self) { group in
            group.addTask { await resolver.verifiedName(of: "192.0.2.10") }
            // Cancelled while in flight: its query has reached the server.
            await server.queries.wait(after: 0)
            group.cancelAll()
            return await group.next() ?? "no answer"
        }
        #expect(name == nil)
        // The caller stopped waiting long before (the margin is for a machine busy with other tests).
        #expect(ContinuousClock.now - started < .seconds(4))
    }

    /// RFC 2308 §7.1: a reverse lookup that no server answered stands for a while, so that a DNS outage is
    /// not one query per client connection; after that the servers are asked again.
    @Test(.timeLimit(.minutes(1))) func aFailedReverseLookupIsNotRepeatedForAWhile() async throws {
        let server = try await SilentNameServer()
        defer { server.stop() }
        let clock = TestClock()
        let resolver = try SystemResolver(servers: [server.address], timeout: .seconds(1), attempts: 1, now: clock.nowFunction)
        #expect(await resolver.verifiedName(of: "192.0.2.20") == nil)
        #expect(server.queries.count == 1)
        #expect(await resolver.verifiedName(of: "192.0.2.20") == nil)
        #expect(server.queries.count == 1, "the failure stands: no second query")
        clock.advance(by: SystemResolver.reverseFailureTTL + .seconds(1))
        #expect(await resolver.verifiedName(of: "192.0.2.20") == nil)
        #expect(server.queries.count == 2, "asked again once the failure is old")
    }
}

/// A DNS server that never answers, and counts the queries it receives.
final class SilentNameServer: Sendable {
    let queries = EventCount()
    private let channel: any Channel
    /// `ip:port`, for ``SystemResolver``.
    let address: String

    init() async throws {
        let queries = self.queries
        channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(QueryCounter(queries: queries)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        address = "127.0.0.1:\(channel.localAddress!.port!)"
    }

    func stop() {
        channel.close(promise: nil)
    }

    private final class QueryCounter: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let queries: EventCount

        init(queries: EventCount) {
            self.queries = queries
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            queries.signal()
        }
    }
}
