import Testing
@testable import SMTPProtocol

/// The text helpers of the DSN renderer: one-line sanitizing and RFC 5322 §2.2.3 folding.
struct DSNTextTests {
    static let singleLines: [(String, String)] = [
        ("plain", "plain"),
        ("a\r\nb", "a b"),
        ("a\r\n\r\nb", "a b"),
        ("a\nb\rc", "a b c"),
        ("a\tb\u{0}c\u{7F}d\u{85}e", "a b c d e"),
        ("  padded \r\n", "padded"),
        ("keeps  inner  spaces", "keeps  inner  spaces"),
        ("ünïcode", "ünïcode"),
    ]

    @Test(arguments: singleLines)
    func keepsTextOnOneLine(text: String, expected: String) {
        #expect(DSNText.singleLine(text) == expected)
    }

    static let typedValues: [(String, String, String)] = [
        ("dns; mx.example.com", "dns", "dns; mx.example.com"),
        ("dns;mx.example.com", "dns", "dns; mx.example.com"),
        ("mx.example.com", "dns", "dns; mx.example.com"),
        ("550 5.1.1 no; really", "smtp", "smtp; 550 5.1.1 no; really"),
        ("X-Petrel; timeout", "smtp", "X-Petrel; timeout"),
        (";leading", "smtp", "smtp; ;leading"),
    ]

    @Test(arguments: typedValues)
    func typesValues(text: String, defaultType: String, expected: String) {
        #expect(DSNText.typedValue(text, defaultType: defaultType) == expected)
    }

    static let folds: [(String, Int, String)] = [
        ("Name: short", 78, "Name: short"),
        ("Name: aaaa bbbb cccc", 12, "Name: aaaa\r\n bbbb cccc"),
        ("Name: aaaa  bbbb", 11, "Name: aaaa\r\n  bbbb"),  // the spaces stay with the word after them
        ("Name: " + String(repeating: "x", count: 20), 10, "Name:\r\n " + String(repeating: "x", count: 20)),
    ]

    @Test(arguments: folds)
    func foldsHeaderFieldsAtSpaces(text: String, width: Int, expected: String) {
        let folded = DSNText.wrap(text, width: width, continuation: nil)
        #expect(folded == expected)
        #expect(folded.split(separator: "\r\n", omittingEmptySubsequences: false).joined() == text)  // unfolding
    }

    @Test(arguments: [997, 998, 999, 2000, 5000])
    func cutsWordsLongerThanTheLimit(length: Int) {
        let text = "Name: " + String(repeating: "é", count: length / 2) + " tail"
        let folded = DSNText.wrap(text, width: 78, continuation: nil)
        let lines = folded.split(separator: "\r\n", omittingEmptySubsequences: false)
        #expect(lines.allSatisfy { $0.utf8.count <= 998 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" ") && $0.count > 1 })
        #expect(folded.filter { $0 == "é" }.count == length / 2)  // cut between characters, not inside one
    }
}
