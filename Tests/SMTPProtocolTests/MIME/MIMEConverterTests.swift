import NIOCore
import Testing
@testable import SMTPProtocol

/// The conversion for a next hop without 8BITMIME (RFC 6152 §3) or for lines over 998 octets (RFC 5321
/// §4.5.3.1.6): what changes, what stays octet for octet, and what cannot be converted.
struct MIMEConverterTests {
    static func convert(_ text: String, allowsEightBit: Bool = false) throws(MIMEConverter.Failure) -> String {
        String(buffer: try MIMEConverter(allowsEightBit: allowsEightBit).convert(ByteBuffer(string: text)))
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var input: String
        var output: String
        var allowsEightBit = false
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "7-bit text is unchanged",
             input: "MIME-Version: 1.0\r\nSubject: a\r\n\r\nHello.\r\n",
             output: "MIME-Version: 1.0\r\nSubject: a\r\n\r\nHello.\r\n"),
        Case(name: "8-bit text becomes quoted-printable; the old encoding field goes, the new one ends the header",
             input: "MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nSubject: Grüße\r\n\r\nViele Grüße aus Köln, bis bald\r\nzweite Zeile \r\n",
             output: "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nSubject: Grüße\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nViele Gr=C3=BC=C3=9Fe aus K=C3=B6ln, bis bald\r\nzweite Zeile=20\r\n"),
        Case(name: "no Content-Type is text/plain, and the encoding field is added",
             input: "MIME-Version: 1.0\r\n\r\nein Grüß\r\n",
             output: "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nein Gr=C3=BC=C3=9F\r\n"),
        Case(name: "text that is mostly 8-bit becomes base64",
             input: "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nПривет\r\n",
             output: "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n0J/RgNC40LLQtdGCDQo=\r\n"),
        Case(name: "a non-text part with a fifth of 8-bit octets becomes base64, though text would be quoted-printable",
             input: "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\r\nabcd\u{00E9}ghij\r\n",
             output: "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nYWJjZMOpZ2hpag0K\r\n"),
        Case(name: "with 8BITMIME, 8-bit text with short lines is unchanged",
             input: "MIME-Version: 1.0\r\n\r\nein Grüß\r\n", output: "MIME-Version: 1.0\r\n\r\nein Grüß\r\n", allowsEightBit: true),
    ]

    @Test(arguments: cases)
    func converts(_ test: Case) throws {
        #expect(try Self.convert(test.input, allowsEightBit: test.allowsEightBit) == test.output)
    }

    /// RFC 5322 §2.2.3: a 10,000-octet header field, even in a message that is not MIME, is folded into
    /// lines of at most 78 at its white space, each continuation starting with it; unfolding gives the field
    /// back. Lines within 998 octets stay as they are.
    @Test func foldsALongHeaderAtWhiteSpace() throws {
        let field = "Subject: " + (0..<2000).map { "w\($0 % 10)rd" }.joined(separator: " ") + "\t "
        let short = "X-Short: " + String(repeating: "a ", count: 490)
        let output = try Self.convert(field + "\r\n" + short + "\r\n\r\nbody " + String(repeating: "x", count: 900) + "\r\n")
        let (header, body) = try #require(Self.split(output))
        #expect(body == "body " + String(repeating: "x", count: 900) + "\r\n")
        let lines = header.split(separator: "\r\n").map(String.init)
        #expect(lines.last == short)
        let folded = lines.dropLast()
        #expect(folded.count > 120)
        #expect(folded.allSatisfy { $0.utf8.count <= 78 })
        #expect(folded.dropFirst().allSatisfy { $0.hasPrefix(" ") })
        #expect(folded.joined() == field)
    }

    /// Nested multiparts: only the 8-bit part changes, in its own header; the boundaries, the 7-bit parts,
    /// an already base64 part and every CRLF stay; the multiparts that said `8bit` say `7bit`.
    @Test func convertsOnlyTheEightBitPartOfNestedMultiparts() throws {
        let input = """
        MIME-Version: 1.0\r
        Content-Type: multipart/mixed; boundary="outer"\r
        Content-Transfer-Encoding: 8bit\r
        \r
        preamble\r
        --outer\r
        Content-Type: multipart/alternative; boundary=inner\r
        \r
        --inner\r
        Content-Type: text/plain; charset=utf-8\r
        Content-Transfer-Encoding: 8bit\r
        \r
        Schöne Grüße vom Bodensee\r
        --inner\r
        Content-Type: text/html\r
        \r
        <p>7-bit</p>\r
        --inner--\r
        \r
        --outer\r
        Content-Type: image/png\r
        Content-Transfer-Encoding: base64\r
        \r
        iVBORw0KGgo=\r
        --outer--  \r
        epilogue\r

        """
        let output = input
            .replacing("multipart/mixed; boundary=\"outer\"\r\nContent-Transfer-Encoding: 8bit", with: "multipart/mixed; boundary=\"outer\"\r\nContent-Transfer-Encoding: 7bit")
            .replacing("Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße", with: "Content-Transfer-Encoding: quoted-printable\r\n\r\nSch=C3=B6ne Gr=C3=BC=C3=9Fe")
        #expect(output != input)
        #expect(try Self.convert(input) == output)
    }

    /// RFC 2046 §5.2.1: an encapsulated message is converted inside; it needs no MIME-Version of its own.
    @Test func convertsInsideAnEncapsulatedMessage() throws {
        let input = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: inner\r\n\r\nvoilà, c'est tout pour aujourd'hui\r\n--b--\r\n"
        let output = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\nSubject: inner\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nvoil=C3=A0, c'est tout pour aujourd'hui\r\n--b--\r\n"
        #expect(try Self.convert(input) == output)
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var name: String
        var input: String
        var failure: MIMEConverter.Failure
        var allowsEightBit = false
        var testDescription: String { name }
    }

    static let refusals: [Refusal] = [
        Refusal(name: "8-bit body without MIME-Version", input: "Subject: a\r\n\r\nGrüße\r\n", failure: .notMIME),
        Refusal(name: "a long body line without MIME-Version", input: "Subject: a\r\n\r\n" + String(repeating: "x", count: 1200) + "\r\n",
                failure: .notMIME, allowsEightBit: true),
        Refusal(name: "a long header without white space", input: "MIME-Version: 1.0\r\nX-Long: " + String(repeating: "x", count: 1200) + "\r\n\r\nbody\r\n",
                failure: .unfoldableHeader),
        Refusal(name: "message/partial", input: "MIME-Version: 1.0\r\nContent-Type: message/partial; id=1; number=1\r\n\r\nGrüße\r\n",
                failure: .cannotEncode(type: "message/partial")),
        Refusal(name: "message/external-body", input: "MIME-Version: 1.0\r\nContent-Type: message/external-body; access-type=x\r\n\r\nGrüße\r\n",
                failure: .cannotEncode(type: "message/external-body")),
        Refusal(name: "a base64 part with 8-bit octets", input: "MIME-Version: 1.0\r\nContent-Transfer-Encoding: BASE64\r\n\r\nGrüße\r\n",
                failure: .encodedPart(encoding: "base64")),
        Refusal(name: "a multipart without a boundary parameter", input: "MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nGrüße\r\n",
                failure: .cannotEncode(type: "multipart/mixed without a boundary")),
        Refusal(name: "a multipart whose boundary never comes", input: "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nGrüße\r\n",
                failure: .cannotEncode(type: "multipart/mixed whose boundary is missing")),
        Refusal(name: "multiparts nested 101 deep",
                input: "MIME-Version: 1.0\r\n" + nesting(101) + "\r\nGrüße\r\n",
                failure: .nestedTooDeep(limit: 100)),
    ]

    /// `depth` multiparts, each the first part of the one before, each with a boundary of its own.
    static func nesting(_ depth: Int) -> String {
        (0..<depth).map { "Content-Type: multipart/mixed; boundary=n\($0)\r\n\r\n--n\($0)\r\n" }.joined()
    }

    /// Nesting within the limit is walked to the bottom.
    @Test func convertsAPartNestedOneHundredDeep() throws {
        let nesting = Self.nesting(100)
        #expect(try Self.convert("MIME-Version: 1.0\r\n" + nesting + "\r\nein Grüß\r\n")
            == "MIME-Version: 1.0\r\n" + nesting + "Content-Transfer-Encoding: quoted-printable\r\n\r\nein Gr=C3=BC=C3=9F\r\n")
    }

    /// A delimiter line made too long by its transport padding loses the padding (RFC 2046 §5.1.1).
    @Test func dropsTransportPaddingThatMakesADelimiterTooLong() throws {
        let input = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b" + String(repeating: " ", count: 1000)
            + "\r\n\r\nGrüße\r\n--b--\r\n"
        #expect(try Self.convert(input, allowsEightBit: true)
            == "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nGrüße\r\n--b--\r\n")
    }

    @Test(arguments: refusals)
    func refuses(_ test: Refusal) {
        #expect(throws: test.failure) { try Self.convert(test.input, allowsEightBit: test.allowsEightBit) }
    }

    /// A 100,000-octet line: quoted-printable lines of at most 76 characters, and decoding gives the
    /// original back, CRLFs included; the same with 8BITMIME (only the length is the problem then).
    @Test(arguments: [false, true])
    func reencodesAHundredThousandOctetLine(allowsEightBit: Bool) throws {
        let body = "first\r\n" + String(repeating: "0123456789", count: 10_000) + "\r\nlast = line\t\r\n"
        let output = try Self.convert("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body, allowsEightBit: allowsEightBit)
        let (header, encoded) = try #require(Self.split(output))
        #expect(header == "MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n")
        #expect(encoded.split(separator: "\r\n", omittingEmptySubsequences: false).allSatisfy { $0.utf8.count <= 76 })
        #expect(Self.decodeQuotedPrintable(encoded) == Array(body.utf8))
    }

    /// Quoted-printable round trips whatever the octets, text or binary, with every line within 76.
    @Test(arguments: [true, false])
    func quotedPrintableRoundTrips(isText: Bool) {
        var input: [UInt8] = []
        var seed: UInt64 = 42
        for _ in 0..<20_000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            input.append(UInt8(truncatingIfNeeded: seed >> 56))
        }
        input += Array("\r\n \r\nend\t".utf8)
        var output: [UInt8] = []
        QuotedPrintable.encode(input[...], isText: isText, into: &output)
        let text = String(decoding: output, as: UTF8.self)
        #expect(output.allSatisfy { $0 < 0x80 })
        #expect(text.split(separator: "\r\n", omittingEmptySubsequences: false).allSatisfy { $0.utf8.count <= 76 })
        #expect(Self.decodeQuotedPrintable(text) == input)
    }

    /// RFC 2046 §5.1.1: a soft break must not make `--b` at the end of a long line begin a line of the
    /// encoding, where it would be the delimiter and end the part. Every place of the break is tried.
    @Test(arguments: 0..<75)
    func aSoftBreakNeverStartsALineWithADash(offset: Int) throws {
        let line = String(repeating: "a", count: 1000 + offset) + "--b"
        let head = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        let output = try Self.convert(head + "\r\n" + line + "\r\n--b--\r\n", allowsEightBit: true)
        #expect(output.split(separator: "\r\n").filter { $0.hasPrefix("--b") } == ["--b", "--b--"])
        let prefix = head + "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        let suffix = "\r\n--b--\r\n"
        #expect(output.hasPrefix(prefix) && output.hasSuffix(suffix))
        let encoded = String(output.dropFirst(prefix.count).dropLast(suffix.count))
        #expect(Self.decodeQuotedPrintable(encoded) == Array(line.utf8))
    }

    /// FuzzMIMEConverter, property "converting the output again changes nothing": `--b` after a bare LF
    /// was taken for a delimiter, but the LF, encoded as `=0A`, no longer ended a line, so the next part (and
    /// the 8-bit header left in it) fell into the encoded one. Now it is data, encoded with the part.
    @Test func aBoundaryAfterABareLineFeedIsData() throws {
        let input = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nGrüße\n--b\r\nX: \u{FF}\r\n\r\nx\r\n--b--\r\n"
        let output = try Self.convert(input)
        #expect(output.utf8.allSatisfy { $0 < 0x80 })
        #expect(try Self.convert(output) == output)
        let prefix = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        #expect(output == prefix + "Gr=C3=BC=C3=9Fe=0A--b\r\nX: =C3=BF\r\n\r\nx\r\n--b--\r\n")
    }

    @Test(arguments: [(isText: true, octets: "Grüße aus Köln und Bern", expected: MIMEConverter.Encoding.quotedPrintable),
                      (isText: true, octets: "Привет", expected: .base64),
                      (isText: false, octets: "Grüße aus Köln und Bern", expected: .base64),
                      (isText: false, octets: String(repeating: "plain ascii ", count: 10) + "é", expected: .quotedPrintable)])
    func choosesTheEncodingByTheShareOfEightBitOctets(_ test: (isText: Bool, octets: String, expected: MIMEConverter.Encoding)) {
        #expect(MIMEConverter.encoding(isText: test.isText, body: Array(test.octets.utf8)[...]) == test.expected)
    }

    static func split(_ message: String) -> (header: String, body: String)? {
        let bytes = Array(message.utf8)
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { bytes[$0..<($0 + 4)].elementsEqual("\r\n\r\n".utf8) }) else { return nil }
        return (String(decoding: bytes[..<(end + 2)], as: UTF8.self), String(decoding: bytes[(end + 4)...], as: UTF8.self))
    }

    /// RFC 2045 §6.7, the decoder, for the tests: `=XX`, soft breaks, hard breaks as CRLF.
    static func decodeQuotedPrintable(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        var index = 0
        func hex(_ byte: UInt8) -> UInt8 { byte <= 57 ? byte - 48 : byte - 55 }
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "=") {
                if bytes[index + 1] == UInt8(ascii: "\r") {
                    index += 3
                } else {
                    output.append(hex(bytes[index + 1]) << 4 | hex(bytes[index + 2]))
                    index += 3
                }
            } else {
                output.append(bytes[index])
                index += 1
            }
        }
        return output
    }
}
