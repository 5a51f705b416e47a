/// RFC 5322 §2.2.3 folding of a header line longer than RFC 5321 §4.5.3.1.6 allows (998 octets before
/// the CRLF). A CRLF is inserted before a space or tab, which unfolding removes again, so the field's
/// value is unchanged. Lines within the limit are copied as they are.
enum HeaderFolding {
    static let longestLine = SMTPLimits.textLineLength - 2
    /// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters; the fold goes at the last white space
    /// before that when there is one, else at the first after it.
    static let preferredLine = 78

    /// Appends `line` (with its CRLF, if any), folded when it is too long.
    static func fold(_ line: ArraySlice<UInt8>, into output: inout [UInt8]) throws(MIMEConverter.Failure) {
        var content = line
        var ending = line[line.endIndex...]
        if content.last == UInt8(ascii: "\n") {
            content = content.dropLast()
            if content.last == UInt8(ascii: "\r") { content = content.dropLast() }
            ending = line[content.endIndex...]
        }
        guard content.count > longestLine else {
            output += line
            return
        }
        // Once a line must be folded, all of it is, into lines of about 78 where white space allows.
        let lastText = content.lastIndex { !isSpace($0) } ?? content.startIndex
        var start = content.startIndex
        while content.endIndex - start > preferredLine {
            guard let cut = foldPoint(content, from: start, before: lastText) else {
                if content.endIndex - start <= longestLine { break }
                throw .unfoldableHeader
            }
            output += content[start..<cut]
            output += [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
            start = cut
        }
        output += content[start...]
        output += ending
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// A white space octet after `start` and before `lastText` (so neither line is only white space,
    /// RFC 5322 §3.2.2), with something other than white space before it on the line.
    private static func foldPoint(_ content: ArraySlice<UInt8>, from start: Int, before lastText: Int) -> Int? {
        var seenText = false
        var best: Int?
        var index = start
        let limit = min(lastText - 1, start + longestLine)
        while index <= limit {
            if isSpace(content[index]) {
                if seenText && index > start {
                    if index - start > preferredLine { return best ?? index }
                    best = index
                }
            } else {
                seenText = true
            }
            index += 1
        }
        return best
    }
}
