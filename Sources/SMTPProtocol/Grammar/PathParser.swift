/// The path grammar of RFC 5321 §4.1.2, over UTF-8 bytes, with the UTF-8 extensions of RFC 6531 §3.3.
///
/// ```
/// Reverse-path = Path / "<>"
/// Path         = "<" [ A-d-l ":" ] Mailbox ">"
/// A-d-l        = At-domain *( "," At-domain )    ; source route: parsed, then ignored (§4.1.2, §C)
/// Mailbox      = Local-part "@" ( Domain / address-literal )
/// ```
/// A space between `FROM:` and `<` is tolerated, as every deployed server does.
struct PathParser {
    private let bytes: [UInt8]
    private(set) var index: Int

    init(_ text: Substring) {
        self.bytes = Array(text.utf8)
        self.index = 0
    }

    /// The text that follows the path: the ESMTP parameters.
    var remainder: Substring {
        Substring(decoding: bytes[index...], as: UTF8.self)
    }

    /// Parses `<>` (as `nil`) or a `Path`.
    mutating func parseReversePath() throws(SMTPSyntaxError) -> Mailbox? {
        skipSpaces()
        if bytes[index...].starts(with: [UInt8(ascii: "<"), UInt8(ascii: ">")]) {
            index += 2
            return nil
        }
        return try parsePath()
    }

    /// Parses a `Path`, dropping any source route.
    mutating func parsePath() throws(SMTPSyntaxError) -> Mailbox {
        skipSpaces()
        try expect(UInt8(ascii: "<"))
        if peek == UInt8(ascii: "@") {
            try skipSourceRoute()
        }
        let mailbox = try parseMailbox()
        try expect(UInt8(ascii: ">"))
        guard mailbox.description.utf8.count + 2 <= SMTPLimits.pathLength else { throw .pathTooLong }
        return mailbox
    }

    // MARK: - Pieces

    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipSpaces() {
        while peek == UInt8(ascii: " ") { index += 1 }
    }

    private mutating func expect(_ byte: UInt8) throws(SMTPSyntaxError) {
        guard peek == byte else { throw .malformedPath }
        index += 1
    }

    /// `A-d-l ":"`: one or more `@domain`, separated by commas.
    private mutating func skipSourceRoute() throws(SMTPSyntaxError) {
        repeat {
            try expect(UInt8(ascii: "@"))
            _ = try parseDomain()
        } while consume(UInt8(ascii: ","))
        try expect(UInt8(ascii: ":"))
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    private mutating func parseMailbox() throws(SMTPSyntaxError) -> Mailbox {
        let localPart = peek == UInt8(ascii: "\"") ? try parseQuotedString() : try parseDotString()
        guard localPart.utf8.count <= SMTPLimits.localPartLength else { throw .pathTooLong }
        try expect(UInt8(ascii: "@"))
        let domain = peek == UInt8(ascii: "[") ? try parseAddressLiteral() : try parseDomain()
        return Mailbox(localPart: localPart, domain: domain)
    }

    /// `Dot-string = Atom *("." Atom)`.
    private mutating func parseDotString() throws(SMTPSyntaxError) -> String {
        let start = index
        repeat {
            let atomStart = index
            while let byte = peek, Self.isAtext(byte) { index += 1 }
            guard index > atomStart else { throw .malformedPath }
        } while consume(UInt8(ascii: "."))
        return try string(from: start)
    }

    /// `Quoted-string = DQUOTE *QcontentSMTP DQUOTE`, kept with its quotes.
    private mutating func parseQuotedString() throws(SMTPSyntaxError) -> String {
        let start = index
        try expect(UInt8(ascii: "\""))
        while true {
            guard let byte = peek else { throw .malformedPath }
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return try string(from: start)
            case UInt8(ascii: "\\"):
                guard let escaped = peek, (32...126).contains(escaped) else { throw .malformedPath }
                index += 1
            case 32...126, 0x80...0xFF:
                continue
            default:
                throw .malformedPath
            }
        }
    }

    /// `Domain = sub-domain *("." sub-domain)`, `sub-domain = Let-dig [Ldh-str]`; U-labels allowed.
    private mutating func parseDomain() throws(SMTPSyntaxError) -> String {
        let start = index
        repeat {
            let labelStart = index
            while let byte = peek, Self.isLetDig(byte) || byte == UInt8(ascii: "-") { index += 1 }
            guard index > labelStart,
                  bytes[labelStart] != UInt8(ascii: "-"),
                  bytes[index - 1] != UInt8(ascii: "-"),
                  index - labelStart <= 63 else { throw .malformedDomain }
        } while consume(UInt8(ascii: "."))
        guard index - start <= SMTPLimits.domainLength else { throw .pathTooLong }
        return try string(from: start)
    }

    /// `address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General ) "]"`, kept with its brackets.
    private mutating func parseAddressLiteral() throws(SMTPSyntaxError) -> String {
        let start = index
        try expect(UInt8(ascii: "["))
        let contentStart = index
        // dcontent = %d33-90 / %d94-126
        while let byte = peek, (33...90).contains(byte) || (94...126).contains(byte) { index += 1 }
        guard index > contentStart else { throw .malformedDomain }
        try expect(UInt8(ascii: "]"))
        return try string(from: start)
    }

    private func string(from start: Int) throws(SMTPSyntaxError) -> String {
        guard let text = String(validating: bytes[start..<index], as: UTF8.self) else { throw .invalidUTF8 }
        return text
    }

    /// `atext` (RFC 5322 §3.2.3), plus UTF-8 octets (RFC 6531 §3.3).
    static func isAtext(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), 0x80...0xFF:
            return true
        default:
            return "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
        }
    }

    static func isLetDig(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), 0x80...0xFF:
            return true
        default:
            return false
        }
    }
}
