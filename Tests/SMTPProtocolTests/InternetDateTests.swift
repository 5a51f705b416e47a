import Testing
@testable import SMTPProtocol

/// RFC 5322 §3.3 date-time and RFC 3339, in UTC.
struct InternetDateTests {
    static let cases: [(Int64, String)] = [
        (0, "Thu, 1 Jan 1970 00:00:00 +0000"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
        (1_795_318_260, "Sun, 22 Nov 2026 03:31:00 +0000"),
        (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
    ]

    @Test(arguments: cases)
    func formats(seconds: Int64, expected: String) {
        #expect(InternetDate.format(secondsSince1970: seconds) == expected)
    }

    static let rfc3339Cases: [(Int64, Int?, String)] = [
        (0, nil, "1970-01-01T00:00:00Z"),
        (951_782_400, 7, "2000-02-29T00:00:00.007Z"),
        (1_795_318_260, 517, "2026-11-22T03:31:00.517Z"),
        (4_102_444_799, 999, "2099-12-31T23:59:59.999Z"),
    ]

    @Test(arguments: rfc3339Cases)
    func formatsRFC3339(seconds: Int64, milliseconds: Int?, expected: String) {
        #expect(InternetDate.rfc3339(secondsSince1970: seconds, milliseconds: milliseconds) == expected)
    }
}
