import PetrelTestSupport
import Testing
@testable import DNSResolver

/// The cache on its own, with a manual clock.
struct DNSCacheTests {
    static func key(_ name: String, _ type: RecordType = .a) -> DNSCache.Key {
        DNSCache.Key(name: name, type: type)
    }

    @Test func keepsAnAnswerForItsTimeToLiveOnly() {
        let clock = TestClock()
        let cache = DNSCache(capacity: 10, now: clock.nowFunction)
        cache.store(.addresses(["192.0.2.1"]), for: Self.key("a.test"), timeToLive: .seconds(30))
        #expect(cache.answer(for: Self.key("a.test")) == .addresses(["192.0.2.1"]))
        #expect(cache.answer(for: Self.key("a.test", .aaaa)) == nil)
        clock.advance(by: .seconds(29))
        #expect(cache.answer(for: Self.key("a.test")) == .addresses(["192.0.2.1"]))
        clock.advance(by: .seconds(1))
        #expect(cache.answer(for: Self.key("a.test")) == nil)
        #expect(cache.count == 0)
    }

    @Test(arguments: [Duration.zero, .seconds(-1)])
    func doesNotKeepAnAnswerWithoutTimeToLive(_ ttl: Duration) {
        let cache = DNSCache(capacity: 10, now: { ContinuousClock.now })
        cache.store(.noRecords, for: Self.key("a.test"), timeToLive: ttl)
        #expect(cache.count == 0)
    }

    @Test func capacityZeroDisablesTheCache() {
        let cache = DNSCache(capacity: 0, now: { ContinuousClock.now })
        cache.store(.noRecords, for: Self.key("a.test"), timeToLive: .seconds(60))
        #expect(cache.answer(for: Self.key("a.test")) == nil)
    }

    @Test func staysWithinItsCapacityDroppingExpiredEntriesFirst() {
        let clock = TestClock()
        let cache = DNSCache(capacity: 10, now: clock.nowFunction)
        for index in 0..<5 {
            cache.store(.nonexistentDomain, for: Self.key("short\(index).test"), timeToLive: .seconds(10))
        }
        for index in 0..<5 {
            cache.store(.noRecords, for: Self.key("long\(index).test"), timeToLive: .seconds(1000))
        }
        #expect(cache.count == 10)
        clock.advance(by: .seconds(20))
        cache.store(.noRecords, for: Self.key("new.test"), timeToLive: .seconds(1000))
        #expect(cache.count == 6)
        for index in 0..<5 {
            #expect(cache.answer(for: Self.key("long\(index).test")) == .noRecords)
        }
        #expect(cache.answer(for: Self.key("new.test")) == .noRecords)
    }

    @Test func whenFullOfLiveEntriesEvictsThoseClosestToExpiring() {
        let clock = TestClock()
        let cache = DNSCache(capacity: 10, now: clock.nowFunction)
        for index in 0..<10 {
            cache.store(.noRecords, for: Self.key("n\(index).test"), timeToLive: .seconds(100 + index))
        }
        cache.store(.noRecords, for: Self.key("new.test"), timeToLive: .seconds(50))
        #expect(cache.count <= 10)
        #expect(cache.answer(for: Self.key("new.test")) == .noRecords)
        #expect(cache.answer(for: Self.key("n0.test")) == nil)
        #expect(cache.answer(for: Self.key("n9.test")) == .noRecords)
        // Replacing an entry of a full cache evicts nothing.
        let before = cache.count
        cache.store(.nonexistentDomain, for: Self.key("n9.test"), timeToLive: .seconds(50))
        #expect(cache.count == before)
        #expect(cache.answer(for: Self.key("n9.test")) == .nonexistentDomain)
    }

    struct NameCase: Sendable, CustomTestStringConvertible {
        var name: String
        var normalized: String?
        var testDescription: String { name.debugDescription }
    }

    static let nameCases: [NameCase] = [
        NameCase(name: "example.test", normalized: "example.test"),
        NameCase(name: "Example.TEST.", normalized: "example.test"),
        NameCase(name: "localhost", normalized: "localhost"),
        NameCase(name: String(repeating: "a", count: 63) + ".test", normalized: String(repeating: "a", count: 63) + ".test"),
        NameCase(name: "", normalized: nil),
        NameCase(name: ".", normalized: nil),
        NameCase(name: "a..test", normalized: nil),
        NameCase(name: ".a.test", normalized: nil),
        NameCase(name: "a.test..", normalized: nil),
        NameCase(name: String(repeating: "a", count: 64) + ".test", normalized: nil),
        NameCase(name: Array(repeating: "abcdefghi", count: 26).joined(separator: "."), normalized: nil),
    ]

    @Test(arguments: nameCases)
    func normalizesDomainNames(_ fixture: NameCase) {
        #expect(normalizedDomainName(fixture.name) == fixture.normalized)
    }
}
