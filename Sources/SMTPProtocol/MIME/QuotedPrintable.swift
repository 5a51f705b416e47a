/// RFC 2045 §6.7 quoted-printable, the encoder: the 7-bit form of text that stays readable.
enum QuotedPrintable {
    /// Encoded lines are at most 76 characters (rule 5); 75 leaves room for the `=` of a soft break.
    static let lineLength = 75
    private static let hex = Array("0123456789ABCDEF".utf8)

    /// Appends the encoding of `input`. For text, each CRLF is a hard line break (rule 4) and any other CR
    /// or LF is encoded; otherwise the data is treated as binary and every CR and LF is encoded (the note
    /// to rule 4: "=0D=0A"), so the decoded octets equal the input either way. White space at the end of
    /// a line is encoded (rule 3), and lines are broken with soft breaks, never inside an `=XX`. A `-`
    /// that would begin a line is encoded, so no line of the encoding can be taken for a boundary.
    static func encode(_ input: ArraySlice<UInt8>, isText: Bool, into output: inout [UInt8]) {
        output.reserveCapacity(output.count + input.count + input.count / 8)
        var column = 0
        var index = input.startIndex
        let end = input.endIndex
        while index < end {
            let byte = input[index]
            let endsLine = index + 1 == end
                || isText && input[index + 1] == UInt8(ascii: "\r") && index + 2 < end && input[index + 2] == UInt8(ascii: "\n")
            if isText, byte == UInt8(ascii: "\r"), index + 1 < end, input[index + 1] == UInt8(ascii: "\n") {
                output.append(UInt8(ascii: "\r"))
                output.append(UInt8(ascii: "\n"))
                column = 0
                index += 2
                continue
            }
            var isLiteral = (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "="))
                || ((byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")) && !endsLine)
            if column + (isLiteral ? 1 : 3) > lineLength {
                output.append(contentsOf: [UInt8(ascii: "="), UInt8(ascii: "\r"), UInt8(ascii: "\n")])
                column = 0
            }
            // A soft break could start a line with `--boundary` that was inside a line before, and the part
            // would end there (RFC 2046 §5.1.1): no encoded line starts with `-`.
            if column == 0 && byte == UInt8(ascii: "-") { isLiteral = false }
            let width = isLiteral ? 1 : 3
            if isLiteral {
                output.append(byte)
            } else {
                output.append(UInt8(ascii: "="))
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            }
            column += width
            index += 1
        }
    }
}
