import Testing
@testable import SMTPProtocol

/// RFC 5322 §3.3 date-time, in UTC.
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
}
