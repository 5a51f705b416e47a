import DNSResolver
import Testing

/// RFC 5321 §5.1 (MX order) and RFC 7505 (null MX).
struct MailExchangerOrderingTests {
    struct OrderCase: Sendable, CustomTestStringConvertible {
        var name: String
        var records: [MXRecord]
        /// The order when every group of equal preference is reversed by the "shuffle".
        var expected: [MXRecord]
        var testDescription: String { name }
    }

    static func mx(_ preference: UInt16, _ exchange: String) -> MXRecord {
        MXRecord(preference: preference, exchange: exchange)
    }

    static let orderCases: [OrderCase] = [
        OrderCase(name: "empty", records: [], expected: []),
        OrderCase(name: "one", records: [mx(10, "a")], expected: [mx(10, "a")]),
        OrderCase(
            name: "ascending preference",
            records: [mx(30, "c"), mx(10, "a"), mx(20, "b")],
            expected: [mx(10, "a"), mx(20, "b"), mx(30, "c")]
        ),
        OrderCase(
            name: "ties shuffled within their group only",
            records: [mx(20, "b1"), mx(10, "a1"), mx(20, "b2"), mx(10, "a2"), mx(5, "z")],
            expected: [mx(5, "z"), mx(10, "a2"), mx(10, "a1"), mx(20, "b2"), mx(20, "b1")]
        ),
        OrderCase(
            name: "preference 0 and 65535",
            records: [mx(65535, "last"), mx(0, "first")],
            expected: [mx(0, "first"), mx(65535, "last")]
        ),
        OrderCase(
            name: "duplicates kept",
            records: [mx(10, "a"), mx(10, "a")],
            expected: [mx(10, "a"), mx(10, "a")]
        ),
    ]

    @Test(arguments: orderCases)
    func ordersByPreferenceAndShufflesTies(_ fixture: OrderCase) {
        #expect(orderMailExchangers(fixture.records, shuffle: { $0.reverse() }) == fixture.expected)
    }

    @Test func shufflesOnlyGroupsOfEqualPreference() {
        var groups: [[MXRecord]] = []
        _ = orderMailExchangers(
            [Self.mx(10, "a"), Self.mx(20, "b1"), Self.mx(30, "c"), Self.mx(20, "b2")],
            shuffle: { groups.append($0) }
        )
        #expect(groups == [[Self.mx(20, "b1"), Self.mx(20, "b2")]])
    }

    @Test func theDefaultShuffleKeepsEveryRecordInPreferenceOrder() {
        let records = (0..<40).map { Self.mx(UInt16($0 % 4) * 10, "mx\($0)") }
        var orders = Set<[MXRecord]>()
        for _ in 0..<20 {
            let ordered = orderMailExchangers(records)
            #expect(ordered.map(\.preference) == records.map(\.preference).sorted())
            #expect(Set(ordered) == Set(records))
            orders.insert(ordered)
        }
        // Ten records per preference: 20 identical orders would be a broken shuffle.
        #expect(orders.count > 1)
    }

    struct NullMXCase: Sendable, CustomTestStringConvertible {
        var name: String
        var records: [MXRecord]
        var isNull: Bool
        var testDescription: String { name }
    }

    static let nullMXCases: [NullMXCase] = [
        NullMXCase(name: "MX 0 .", records: [mx(0, "")], isNull: true),
        NullMXCase(name: "MX 10 . (preference not checked)", records: [mx(10, "")], isNull: true),
        NullMXCase(name: "no records", records: [], isNull: false),
        NullMXCase(name: "an ordinary MX", records: [mx(0, "mx.example.com")], isNull: false),
        NullMXCase(name: "root among others", records: [mx(0, ""), mx(10, "mx.example.com")], isNull: false),
        NullMXCase(name: "two roots", records: [mx(0, ""), mx(0, "")], isNull: false),
    ]

    @Test(arguments: nullMXCases)
    func recognisesNullMX(_ fixture: NullMXCase) {
        #expect(isNullMX(fixture.records) == fixture.isNull)
    }
}
