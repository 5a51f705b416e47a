import NIOCore

/// Rewrites a message so that a next hop may take it, changing nothing its recipient decodes:
///
/// - Without 8BITMIME at the next hop (``allowsEightBit`` `false`), every body part with octets over 127
///   is re-encoded as quoted-printable or base64 (RFC 6152 §3: 8-bit data must not go to a server that did
///   not offer 8BITMIME; RFC 1652 §5 and Postfix do the same). Header fields are left as they are: 8-bit
///   octets there are RFC 6532's business (SMTPUTF8), not MIME's, as in Postfix.
/// - Any line over 998 octets (RFC 5321 §4.5.3.1.6: 1000 with the CRLF): a header line is folded at white
///   space (RFC 5322 §2.2.3, which unfolding undoes), and a body part that holds one is re-encoded, whose
///   encoded lines are at most 76 characters (RFC 2045 §6.7, §6.8).
///
/// Parts that need nothing are copied octet for octet, so are CRLFs, boundaries and the fields of part
/// headers; a re-encoded part's `Content-Transfer-Encoding` field is replaced (or added) in its own header,
/// and a multipart or `message/rfc822` that held 8-bit parts says `7bit` afterwards (RFC 2045 §6.4).
/// Nested multiparts and encapsulated messages (RFC 2046 §5.2.1) are walked to any depth.
///
/// A conversion fails, and nothing is sent, when it would change the meaning or is not defined (see
/// ``Failure``): the caller defers to the next mail exchanger and finally bounces with `5.6.3`.
public struct MIMEConverter: Sendable {
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// The body must change but the message has no `MIME-Version` field: it is not MIME (RFC 2045 §4),
        /// so there is no way to say how it was encoded.
        case notMIME
        /// A header line over 998 octets with no white space to fold at (RFC 5322 §2.2.3).
        case unfoldableHeader
        /// A part already encoded (`base64`, `quoted-printable` or an unknown encoding), or a composite
        /// type, whose text still breaks the rules: it cannot be encoded twice (RFC 2045 §6.4).
        case encodedPart(encoding: String)
        /// `message/partial`, `message/external-body` (7bit only, RFC 2046 §5.2.2, §5.2.3) and the other
        /// `message/*` types that may not be encoded, or a multipart with no boundary that can be found.
        case cannotEncode(type: String)
        /// The caller's bound on what it converts in memory.
        case tooLarge(limit: Int)
        /// Multiparts and encapsulated messages nested deeper than ``MIMEConverter/nestingLimit``.
        case nestedTooDeep(limit: Int)

        public var description: String {
            switch self {
            case .notMIME: "the message is not MIME (no MIME-Version header field)"
            case .unfoldableHeader: "a header line over 998 octets has no white space to fold at"
            case .encodedPart(let encoding): "a part with Content-Transfer-Encoding \(encoding) has 8-bit octets or over-long lines"
            case .cannotEncode(let type): "a \(type) part cannot be re-encoded"
            case .tooLarge(let limit): "the message is over \(limit) octets, the most converted"
            case .nestedTooDeep(let limit): "its parts are nested more than \(limit) deep"
            }
        }
    }

    public enum Encoding: String, Hashable, Sendable {
        case quotedPrintable = "quoted-printable"
        case base64 = "base64"
    }

    /// How deep parts may nest (Postfix's `mime_nesting_limit` is 100 too): the walk recurses, and a
    /// hostile message must not exhaust the stack.
    public static let nestingLimit = 100

    /// `true` when the next hop offers 8BITMIME: only over-long lines are dealt with.
    public var allowsEightBit: Bool

    public init(allowsEightBit: Bool) {
        self.allowsEightBit = allowsEightBit
    }

    /// The converted message, whole; throws rather than return part of one.
    public func convert(_ message: ByteBuffer) throws(Failure) -> ByteBuffer {
        var writer = Writer(text: Array(message.readableBytesView), allowsEightBit: allowsEightBit)
        try writer.entity(0..<writer.text.count, isTopLevel: true, defaultType: .textPlain, depth: 0)
        return ByteBuffer(bytes: writer.output)
    }

    /// Quoted-printable keeps text readable and costs 3 octets for each one it must escape; base64 costs
    /// 4 for every 3. So text (`text/*`, RFC 2045 §6.7's case) is quoted-printable unless over a third of
    /// it must be escaped, and other types only below a sixth (where quoted-printable is the shorter; their
    /// CRs and LFs count, being escaped too).
    public static func encoding(isText: Bool, body: ArraySlice<UInt8>) -> Encoding {
        var escaped = 0
        for byte in body where byte >= 0x80 || byte == UInt8(ascii: "=") || (!isText && (byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n"))) {
            escaped += 1
        }
        return escaped * (isText ? 3 : 6) <= body.count ? .quotedPrintable : .base64
    }

    private struct Writer {
        let text: [UInt8]
        let allowsEightBit: Bool
        var output: [UInt8] = []

        init(text: [UInt8], allowsEightBit: Bool) {
            self.text = text
            self.allowsEightBit = allowsEightBit
            output.reserveCapacity(text.count + text.count / 3 + 64)
        }

        /// No line over 998 octets, and no 8-bit octet unless allowed.
        func isClean(_ range: Range<Int>) -> Bool {
            var scanner = ContentScanner(startsInBody: true)
            text.withUnsafeBytes { scanner.scan(UnsafeRawBufferPointer(rebasing: $0[range])) }
            let profile = scanner.finish()
            return !profile.hasLongLines && (allowsEightBit || !profile.hasEightBitBody)
        }

        /// One entity: the message, a body part, or an encapsulated message (RFC 2045 §2.4).
        mutating func entity(_ range: Range<Int>, isTopLevel: Bool, defaultType: MIMEContentType, depth: Int) throws(Failure) {
            guard depth <= MIMEConverter.nestingLimit else { throw .nestedTooDeep(limit: MIMEConverter.nestingLimit) }
            let header = MIMEHeaderSection(text, in: range)
            let body = header.bodyStart..<range.upperBound
            if isClean(body) {
                try writeHeader(header, in: range, encoding: nil)
                output += text[body]
                return
            }
            // RFC 2045 §4: only the top level must say MIME-Version; parts are MIME by being parts.
            guard !isTopLevel || header.field("mime-version") != nil else { throw .notMIME }
            let type = header.value(of: "content-type", in: text).flatMap(MIMEContentType.init) ?? defaultType
            let encoding = Self.transferEncoding(header.value(of: "content-transfer-encoding", in: text))
            let isIdentity = encoding == "7bit" || encoding == "8bit" || encoding == "binary"
            guard isIdentity else { throw .encodedPart(encoding: encoding) }
            // A composite entity whose parts become 7-bit is 7-bit (RFC 2045 §6.4).
            let composite: String? = allowsEightBit || encoding == "7bit" || header.field("content-transfer-encoding") == nil ? nil : "7bit"
            switch (type.type, type.subtype) {
            case ("multipart", let subtype):
                guard let boundary = type.parameters["boundary"], !boundary.isEmpty else { throw .cannotEncode(type: "multipart/\(subtype) without a boundary") }
                try writeHeader(header, in: range, encoding: composite)
                try multipart(body, boundary: Array(boundary.utf8), partType: subtype == "digest" ? .messageRFC822 : .textPlain,
                              type: "multipart/\(subtype)", depth: depth)
            case ("message", "rfc822"):
                try writeHeader(header, in: range, encoding: composite)
                try entity(body, isTopLevel: false, defaultType: .textPlain, depth: depth + 1)
            case ("message", let subtype) where !subtype.hasPrefix("global"):
                // RFC 6532 §3.5 lets message/global* be encoded; RFC 2046 §5.2 keeps the rest in 7bit/8bit.
                throw .cannotEncode(type: "message/\(subtype)")
            default:
                let chosen = MIMEConverter.encoding(isText: type.isText, body: text[body])
                try writeHeader(header, in: range, encoding: chosen.rawValue)
                switch chosen {
                case .quotedPrintable: QuotedPrintable.encode(text[body], isText: type.isText, into: &output)
                case .base64: Self.base64(text[body], into: &output)
                }
            }
        }

        /// RFC 2046 §5.1.1: parts between `--boundary` lines, the CRLF before each belonging to the
        /// delimiter. The preamble and epilogue are to be ignored by readers; when one breaks the rules it
        /// is left out rather than failing the message.
        mutating func multipart(_ body: Range<Int>, boundary: [UInt8], partType: MIMEContentType, type: String, depth: Int) throws(Failure) {
            var segmentStart = body.lowerBound
            var lineStart = body.lowerBound
            var isPreamble = true
            while lineStart < body.upperBound {
                let lineEnd = MIMEHeaderSection.endOfLine(text, from: lineStart, before: body.upperBound)
                // A delimiter follows a CRLF (RFC 2046 §5.1.1): after a bare LF, which an encoding keeps as
                // data (`=0A`), `--boundary` is data too, or the encoded part would swallow the next one.
                let followsCRLF = lineStart == body.lowerBound || (lineStart - 2 >= body.lowerBound && text[lineStart - 2] == UInt8(ascii: "\r"))
                guard followsCRLF, let isClose = delimiter(lineStart..<lineEnd, boundary) else {
                    lineStart = lineEnd
                    continue
                }
                var contentEnd = lineStart
                if lineStart - 2 >= segmentStart, text[lineStart - 2] == UInt8(ascii: "\r"), text[lineStart - 1] == UInt8(ascii: "\n") {
                    contentEnd = lineStart - 2
                }
                if isPreamble {
                    if isClean(segmentStart..<contentEnd) { output += text[segmentStart..<lineStart] }
                    isPreamble = false
                } else {
                    try entity(segmentStart..<contentEnd, isTopLevel: false, defaultType: partType, depth: depth + 1)
                    output += text[contentEnd..<lineStart]
                }
                if lineEnd - lineStart > SMTPLimits.textLineLength {
                    // Transport padding (RFC 2046 §5.1.1) that makes the line too long: readers ignore it.
                    output += [UInt8(ascii: "-"), UInt8(ascii: "-")] + boundary + (isClose ? [UInt8(ascii: "-"), UInt8(ascii: "-")] : [])
                    output += [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
                } else {
                    output += text[lineStart..<lineEnd]
                }
                segmentStart = lineEnd
                lineStart = lineEnd
                if isClose {
                    if isClean(segmentStart..<body.upperBound) { output += text[segmentStart..<body.upperBound] }
                    return
                }
            }
            guard !isPreamble else { throw .cannotEncode(type: "\(type) whose boundary is missing") }
            // No close delimiter: the last part runs to the end, as readers take it.
            try entity(segmentStart..<body.upperBound, isTopLevel: false, defaultType: partType, depth: depth + 1)
        }

        /// `nil` unless the line is `--boundary` or `--boundary--`, with only white space after it.
        func delimiter(_ line: Range<Int>, _ boundary: [UInt8]) -> Bool? {
            let dash = UInt8(ascii: "-")
            guard line.count >= boundary.count + 2, text[line.lowerBound] == dash, text[line.lowerBound + 1] == dash,
                  text[(line.lowerBound + 2)..<(line.lowerBound + 2 + boundary.count)].elementsEqual(boundary) else { return nil }
            var index = line.lowerBound + 2 + boundary.count
            var isClose = false
            if index + 1 < line.upperBound, text[index] == dash, text[index + 1] == dash {
                isClose = true
                index += 2
            }
            while index < line.upperBound {
                switch text[index] {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): index += 1
                default: return nil
                }
            }
            return isClose
        }

        /// The fields, each line over 998 octets folded; with `encoding`, the old
        /// `Content-Transfer-Encoding` field is dropped and a new one closes the section.
        mutating func writeHeader(_ header: MIMEHeaderSection, in range: Range<Int>, encoding: String?) throws(Failure) {
            var fieldsEnd = range.lowerBound
            for field in header.fields {
                fieldsEnd = field.range.upperBound
                if encoding != nil, field.name == Array("content-transfer-encoding".utf8) { continue }
                var lineStart = field.range.lowerBound
                while lineStart < field.range.upperBound {
                    let lineEnd = MIMEHeaderSection.endOfLine(text, from: lineStart, before: field.range.upperBound)
                    try HeaderFolding.fold(text[lineStart..<lineEnd], into: &output)
                    lineStart = lineEnd
                }
            }
            if let encoding {
                output += Array("Content-Transfer-Encoding: \(encoding)\r\n".utf8)
            }
            output += text[fieldsEnd..<header.bodyStart]
        }

        /// The mechanism, lowercased, without comments; `7bit` when absent (RFC 2045 §6.1).
        static func transferEncoding(_ value: [UInt8]?) -> String {
            guard let value else { return "7bit" }
            let token = value.prefix { $0 != UInt8(ascii: "(") && $0 != UInt8(ascii: ";") }
                .filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
            return String(decoding: token, as: UTF8.self).lowercased()
        }

        /// RFC 2045 §6.8: lines of 76 characters, each 57 octets of input, ending with CRLF.
        static func base64(_ body: ArraySlice<UInt8>, into output: inout [UInt8]) {
            var index = body.startIndex
            while index < body.endIndex {
                let end = min(index + 57, body.endIndex)
                Base64.encode(body[index..<end], into: &output)
                output += [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
                index = end
            }
        }
    }
}
