/// Text helpers for the fields and the explanation of a delivery status notification: keeping text
/// from a remote server or a client on one line, typed values (`dns; mx.example.com`), and folding.
enum DSNText {
    /// Keeps text on one line: a run of CR and LF becomes one space, as does any other control
    /// character (so a remote reply cannot add a field or end a part, RFC 3464 §2.3.6); leading and
    /// trailing whitespace is dropped.
    static func singleLine(_ text: some StringProtocol) -> String {
        var scalars = String.UnicodeScalarView()
        var previousWasLineBreak = false
        for scalar in text.unicodeScalars {
            let isLineBreak = scalar == "\r" || scalar == "\n"
            if isLineBreak {
                if !previousWasLineBreak { scalars.append(" ") }
            } else if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
                        || scalar == "\u{2028}" || scalar == "\u{2029}" {
                scalars.append(" ")
            } else {
                scalars.append(scalar)
            }
            previousWasLineBreak = isLineBreak
        }
        return String(trimmed(String(scalars)))
    }

    /// Splits `type; value` (RFC 3464 §2.1.2's `address-type`, `diagnostic-type`, `mta-name-type`,
    /// each an atom) into its parts; `nil` when the text does not start with a type and a semicolon.
    static func typed(_ text: String) -> (type: Substring, value: Substring)? {
        guard let semicolon = text.firstIndex(of: ";"), semicolon != text.startIndex else { return nil }
        let type = text[..<semicolon]
        guard type.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") })
        else { return nil }
        return (type, trimmed(text[text.index(after: semicolon)...]))
    }

    /// `type; value`, with `defaultType` when the text has no type of its own.
    static func typedValue(_ text: String, defaultType: String) -> String {
        let line = singleLine(text)
        if let (type, value) = typed(line) { return "\(type); \(value)" }
        return "\(defaultType); \(line)"
    }

    /// The value of a typed text without its type: the host of `dns; mx.example.com`.
    static func untyped(_ text: String) -> String {
        let line = singleLine(text)
        return typed(line).map { String($0.value) } ?? line
    }

    /// RFC 6533 §3 `utf-8-addr-unitext`: UTF-8 as it is, but `+`, `=`, `\`, space and controls as
    /// `\x{HEX}`.
    static func unitext(_ address: String) -> String {
        var output = ""
        for scalar in address.unicodeScalars {
            if scalar.value <= 0x20 || scalar == "+" || scalar == "=" || scalar == "\\" || scalar.value == 0x7F {
                output += "\\x{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                output.unicodeScalars.append(scalar)
            }
        }
        return output
    }

    /// An address on one line without the angle brackets of a path: `user@example.com`.
    static func bareAddress(_ text: String) -> String {
        let line = singleLine(text)
        guard line.count >= 2, line.hasPrefix("<"), line.hasSuffix(">") else { return line }
        return String(line.dropFirst().dropLast())
    }

    /// The text without leading and trailing spaces.
    static func trimmed<Text: StringProtocol>(_ text: Text) -> Text.SubSequence {
        let start = text.firstIndex(where: { $0 != " " }) ?? text.endIndex
        let end = text.lastIndex(where: { $0 != " " }).map { text.index(after: $0) } ?? start
        return text[start..<end]
    }

    /// `true` when the text is all ASCII.
    static func isASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 < 0x80 }
    }

    /// A header field, `Name: value`, folded at spaces (RFC 5322 §2.2.3) so that lines stay within
    /// 78 octets where the words allow and never exceed 998 (§2.1.1), with its CRLF.
    static func field(_ name: String, _ value: String) -> String {
        wrap(name + ": " + singleLine(value), width: 78, continuation: nil) + "\r\n"
    }

    /// Breaks one line into lines of at most `width` octets where the words allow, never more than
    /// `limit`; the result has no final CRLF.
    ///
    /// With `continuation` `nil` the text is folded as a header field: a line break goes in front of
    /// the spaces it breaks at, so that unfolding restores the text. Otherwise a continuation line
    /// starts with `continuation` instead of those spaces. A word too long for `limit` is cut; a
    /// header field then gains a space where it was cut.
    static func wrap(_ text: String, width: Int, limit: Int = 998, continuation: String?) -> String {
        // Segments: a word, then each run of spaces with the word after it.
        var segments: [Substring] = []
        var start = text.startIndex
        var previousWasSpace = false
        for index in text.indices {
            let isSpace = text[index] == " "
            if isSpace, !previousWasSpace, index != start {
                segments.append(text[start..<index])
                start = index
            }
            previousWasSpace = isSpace
        }
        segments.append(text[start...])

        let breakPrefix = continuation ?? " "
        var output = ""
        var lineLength = 0
        func append(_ piece: Substring) {
            var rest = piece
            while lineLength + rest.utf8.count > limit {
                var cut = rest.startIndex
                var length = lineLength
                for scalarIndex in rest.unicodeScalars.indices {
                    let scalarLength = UTF8.width(rest.unicodeScalars[scalarIndex])
                    if length + scalarLength > limit { break }
                    length += scalarLength
                    cut = rest.unicodeScalars.index(after: scalarIndex)
                }
                output += rest[..<cut]
                output += "\r\n" + breakPrefix
                lineLength = breakPrefix.utf8.count
                rest = rest[cut...]
            }
            output += rest
            lineLength += rest.utf8.count
        }
        for (position, segment) in segments.enumerated() {
            if position == 0 || lineLength + segment.utf8.count <= width {
                append(segment)
            } else if let continuation {
                output += "\r\n" + continuation
                lineLength = continuation.utf8.count
                append(segment.drop(while: { $0 == " " }))
            } else {
                output += "\r\n"
                lineLength = 0
                append(segment)
            }
        }
        return output
    }
}

