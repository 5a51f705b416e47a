/// The `MAIL FROM` parameters Petrel understands (RFC 5321 §4.1.2 `Mail-parameters`).
public struct MailParameters: Hashable, Sendable, Codable {
    /// RFC 2045 `BODY=`, as declared by RFC 6152 §2.
    public enum BodyType: String, Hashable, Sendable, Codable {
        case sevenBit = "7BIT"
        case eightBitMIME = "8BITMIME"
    }

    /// RFC 3461 §4.3 `RET=`.
    public enum Return: String, Hashable, Sendable, Codable {
        case full = "FULL"
        case headers = "HDRS"
    }

    /// RFC 1870 §3 `SIZE=`: the client's estimate of the message size in octets.
    public var declaredSize: Int?
    public var body: BodyType?
    /// RFC 6531 §3.4 `SMTPUTF8`.
    public var isSMTPUTF8: Bool = false
    public var dsnReturn: Return?
    /// RFC 3461 §4.4 `ENVID=`, still in xtext form.
    public var dsnEnvelopeID: String?

    public init() {}

    /// Parses the space-separated `keyword[=value]` list after the path.
    public init(parsing text: Substring) throws(SMTPSyntaxError) {
        self.init()
        for (key, value) in try ESMTPParameterList.split(text) {
            switch (key, value) {
            case ("SIZE", let value?):
                guard value.count <= 18, value.allSatisfy(\.isASCIIDigit), let size = Int(value) else {
                    throw .malformedParameter(key)
                }
                declaredSize = size
            case ("BODY", let value?):
                guard let body = BodyType(rawValue: value.asciiUppercased) else { throw .malformedParameter(key) }
                self.body = body
            case ("SMTPUTF8", nil):
                isSMTPUTF8 = true
            case ("RET", let value?):
                guard let ret = Return(rawValue: value.asciiUppercased) else { throw .malformedParameter(key) }
                dsnReturn = ret
            case ("ENVID", let value?):
                guard value.utf8.count <= 100, XText.isValid(value) else { throw .malformedParameter(key) }
                dsnEnvelopeID = String(value)
            case ("AUTH", _?):
                // RFC 4954 §5: the submitter's identity; accepted and ignored here.
                continue
            case ("SIZE", nil), ("BODY", nil), ("RET", nil), ("ENVID", nil), ("AUTH", nil), ("SMTPUTF8", _?):
                throw .malformedParameter(key)
            default:
                throw .unknownParameter(key)
            }
        }
    }
}

/// The `RCPT TO` parameters Petrel understands: RFC 3461's `NOTIFY=` and `ORCPT=`.
public struct RecipientParameters: Hashable, Sendable, Codable {
    /// RFC 3461 §4.1 `NOTIFY=`: `NEVER`, or any of `SUCCESS`, `FAILURE`, `DELAY`.
    public struct Notify: OptionSet, Hashable, Sendable, Codable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let success = Notify(rawValue: 1)
        public static let failure = Notify(rawValue: 2)
        public static let delay = Notify(rawValue: 4)
        /// `NEVER` is the empty set.
        public static let never: Notify = []

        /// The keyword form used on the wire and in the queue: `NEVER` or `SUCCESS,FAILURE`.
        public var keyword: String {
            if isEmpty { return "NEVER" }
            var names: [String] = []
            if contains(.success) { names.append("SUCCESS") }
            if contains(.failure) { names.append("FAILURE") }
            if contains(.delay) { names.append("DELAY") }
            return names.joined(separator: ",")
        }

        public init?(keyword: Substring) {
            let names = keyword.asciiUppercased.split(separator: ",", omittingEmptySubsequences: false)
            if names == ["NEVER"] { self = .never; return }
            var value: Notify = []
            for name in names {
                switch name {
                case "SUCCESS": value.insert(.success)
                case "FAILURE": value.insert(.failure)
                case "DELAY": value.insert(.delay)
                default: return nil
                }
            }
            self = value
        }
    }

    /// `nil` when the client sent no `NOTIFY`: RFC 3461 §4.1 then means "FAILURE and maybe DELAY".
    public var notify: Notify?
    /// RFC 3461 §4.2 `ORCPT=addr-type;xtext`, kept as sent.
    public var originalRecipient: String?

    public init() {}

    public init(parsing text: Substring) throws(SMTPSyntaxError) {
        self.init()
        for (key, value) in try ESMTPParameterList.split(text) {
            switch (key, value) {
            case ("NOTIFY", let value?):
                guard let notify = Notify(keyword: value) else { throw .malformedParameter(key) }
                self.notify = notify
            case ("ORCPT", let value?):
                guard let semicolon = value.firstIndex(of: ";"),
                      value[..<semicolon].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }),
                      semicolon != value.startIndex,
                      value.utf8.count <= 500,
                      XText.isValid(value[value.index(after: semicolon)...]) else {
                    throw .malformedParameter(key)
                }
                originalRecipient = String(value)
            case ("NOTIFY", nil), ("ORCPT", nil):
                throw .malformedParameter(key)
            default:
                throw .unknownParameter(key)
            }
        }
    }
}

/// `esmtp-param = esmtp-keyword ["=" esmtp-value]` (RFC 5321 §4.1.2), separated by spaces.
enum ESMTPParameterList {
    /// The `keyword[=value]` pairs, keywords uppercased; a keyword given twice is refused.
    static func split(_ text: Substring) throws(SMTPSyntaxError) -> [(key: String, value: Substring?)] {
        var result: [(key: String, value: Substring?)] = []
        var seen = Set<String>()
        for word in text.split(separator: " ") {
            let key: Substring
            let value: Substring?
            if let equals = word.firstIndex(of: "=") {
                key = word[..<equals]
                value = word[word.index(after: equals)...]
            } else {
                key = word
                value = nil
            }
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                throw .malformedCommand
            }
            // esmtp-value = 1*(%d33-60 / %d62-126), or UTF-8 under SMTPUTF8 (RFC 6531 §3.3).
            if let value, value.isEmpty || value.utf8.contains(where: { $0 < 33 || $0 == 61 || $0 == 127 }) {
                throw .malformedParameter(key.asciiUppercased)
            }
            let keyword = key.asciiUppercased
            guard seen.insert(keyword).inserted else { throw .duplicateParameter(keyword) }
            result.append((keyword, value))
        }
        return result
    }
}

/// RFC 3461 §4 `xtext`: printable ASCII except `+` and `=`, with `+XX` hex escapes.
public enum XText {
    public static func isValid(_ text: Substring) -> Bool {
        var bytes = text.utf8.makeIterator()
        while let byte = bytes.next() {
            if byte == UInt8(ascii: "+") {
                guard let high = bytes.next(), let low = bytes.next(),
                      isUpperHex(high), isUpperHex(low) else { return false }
            } else if !(33...126).contains(byte) || byte == UInt8(ascii: "=") {
                return false
            }
        }
        return true
    }

    /// Decodes `+XX` escapes; an invalid text decodes as itself.
    public static func decode(_ text: String) -> String {
        guard text.contains("+") else { return text }
        var output: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let byte = bytes.popFirst() {
            if byte == UInt8(ascii: "+"), bytes.count >= 2,
               let value = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                output.append(value)
                bytes = bytes.dropFirst(2)
            } else {
                output.append(byte)
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Encodes a string as xtext.
    public static func encode(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            if (33...126).contains(byte), byte != UInt8(ascii: "+"), byte != UInt8(ascii: "=") {
                output.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                output += "+" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return output
    }

    private static func isUpperHex(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
