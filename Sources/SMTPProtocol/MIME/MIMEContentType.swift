/// A `Content-Type` field's value (RFC 2045 §5.1): `type/subtype` and its parameters, of which the
/// converter needs only `boundary` (RFC 2046 §5.1.1). Comments (RFC 822 §3.4.3) are skipped.
struct MIMEContentType: Hashable {
    /// Lowercased.
    var type: String
    var subtype: String
    var parameters: [String: String] = [:]

    static let textPlain = MIMEContentType(type: "text", subtype: "plain")
    /// RFC 2046 §5.1.5: the default for a part of `multipart/digest`.
    static let messageRFC822 = MIMEContentType(type: "message", subtype: "rfc822")

    init(type: String, subtype: String, parameters: [String: String] = [:]) {
        self.type = type
        self.subtype = subtype
        self.parameters = parameters
    }

    /// `nil` when the value is not `type/subtype`: RFC 2045 §5.2 then says to treat it as `text/plain`.
    init?(_ value: [UInt8]) {
        var scanner = Scanner(bytes: value.filter { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") })
        guard let type = scanner.token(), scanner.take(UInt8(ascii: "/")), let subtype = scanner.token() else { return nil }
        self.type = type.lowercased()
        self.subtype = subtype.lowercased()
        while scanner.take(UInt8(ascii: ";")) {
            guard let name = scanner.token(), scanner.take(UInt8(ascii: "=")) else { break }
            guard let value = scanner.quotedString() ?? scanner.token() else { break }
            parameters[name.lowercased()] = value
        }
    }

    var isMultipart: Bool { type == "multipart" }
    var isText: Bool { type == "text" }

    /// RFC 2045 §5.1 `token` and RFC 822 `quoted-string`, with white space and comments between them.
    private struct Scanner {
        var bytes: [UInt8]
        var index = 0

        static let specials = Set("()<>@,;:\\\"/[]?=".utf8)

        mutating func skipSpace() {
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                    index += 1
                } else if byte == UInt8(ascii: "(") {
                    var depth = 0
                    while index < bytes.count {
                        if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                        else if bytes[index] == UInt8(ascii: "(") { depth += 1 }
                        else if bytes[index] == UInt8(ascii: ")") { depth -= 1; if depth == 0 { index += 1; break } }
                        index += 1
                    }
                } else {
                    return
                }
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func token() -> String? {
            skipSpace()
            let start = index
            while index < bytes.count, bytes[index] > 32, bytes[index] < 127, !Self.specials.contains(bytes[index]) { index += 1 }
            return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
        }

        mutating func quotedString() -> String? {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            var value: [UInt8] = []
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                if bytes[index] == UInt8(ascii: "\\"), index + 1 < bytes.count { index += 1 }
                value.append(bytes[index])
                index += 1
            }
            index += 1
            return String(decoding: value, as: UTF8.self)
        }
    }
}
