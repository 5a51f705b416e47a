import Testing
@testable import SMTPProtocol

/// RFC 4648 §4 base64 as SASL carries it (RFC 4954 §4): the §10 test vectors, and strict decoding.
struct Base64Tests {
    static let vectors: [(String, String)] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ]

    @Test(arguments: vectors)
    func encodesRFC4648Vectors(text: String, encoded: String) {
        #expect(Base64.encode(text) == encoded)
        #expect(Base64.encode(Array(text.utf8)) == encoded)
    }

    @Test(arguments: vectors)
    func decodesRFC4648Vectors(text: String, encoded: String) {
        #expect(Base64.decode(encoded) == Array(text.utf8))
    }

    @Test func usesTheWholeAlphabet() {
        // Values 62 and 63 are "+" and "/" in §4's alphabet.
        #expect(Base64.encode([0xFB, 0xEF, 0xBE]) == "++++")
        #expect(Base64.encode([0xFF, 0xFF, 0xFF]) == "////")
        #expect(Base64.decode("++//") == [0xFB, 0xEF, 0xFF])
        #expect(Base64.encode([0, 0, 0]) == "AAAA")
    }

    @Test func roundTripsEveryByteAndLength() {
        let bytes = (0...255).map { UInt8($0) }
        for length in 0...bytes.count {
            let slice = Array(bytes.prefix(length))
            #expect(Base64.decode(Base64.encode(slice)) == slice, "length \(length)")
        }
        // The SASL PLAIN message with its NULs.
        #expect(Base64.encode([0] + Array("app".utf8) + [0] + Array("secret".utf8)) == "AGFwcABzZWNyZXQ=")
    }

    static let malformed: [String] = [
        "Z",            // not a multiple of four
        "Zg",           // padding left out
        "Zg=",
        "Zm9vY",
        "Zg===",
        "=Zg=",         // padding first
        "Z===",         // three padding characters
        "====",
        "Zg=a",         // a character after padding
        "Zg==Zm8=",     // padding in the middle
        "Zm8=Zm9v",
        "Zm9v!A==",     // characters outside the alphabet
        "Zm9*",
        "Zm 9",
        "Zm9v\r\n",
        "Zh==",         // non-zero bits left over by the padding (canonical: "Zg==")
        "Zm9=",         // canonical: "Zm8="
        "AB==",
        "Zm-_",         // the URL-safe alphabet (§5) is not §4's
        "Zm9\u{00E9}",
        "Zm9v\0AAA",
    ]

    @Test(arguments: malformed)
    func refusesMalformedInput(_ text: String) {
        #expect(Base64.decode(text) == nil)
    }
}
