import FuzzSupport
import NIOCore
import SMTPProtocol

// The text of a queued message on its way out: `ContentScanner` (what it needs of the next hop) and
// `MIMEConverter` (8-bit to 7-bit, RFC 6152 §3; lines over 998 octets, RFC 5321 §4.5.3.1.6). Both run in the
// delivery process on whatever a client sent. Each `~` of the input stands for 1000 `x` when the input's hash
// says so, so that short inputs reach the long-line paths.
//
// Properties:
// 1. The scanner, fed the text in any pieces, agrees with a reference written octet by octet.
// 2. A conversion that succeeds leaves no line over 998 octets, and converting its output again changes
//    nothing (the output is what the next hop may take).
// 3. A text that needs nothing (no long line, and no 8-bit body unless allowed) is returned octet for octet.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let raw = Array(UnsafeRawBufferPointer(start: start, count: count))
    var choices = FuzzChoices(raw, salt: 10)
    var input: [UInt8] = []
    let expands = choices.bool()
    for byte in raw {
        if expands && byte == UInt8(ascii: "~") {
            input += repeatElement(UInt8(ascii: "x"), count: 1000)
        } else {
            input.append(byte)
        }
    }

    let expected = referenceProfile(input)
    var scanner = ContentScanner()
    for piece in choices.pieces(of: input, count: choices.int(in: 1...4)) { scanner.scan(ByteBuffer(bytes: piece)) }
    let profile = scanner.finish()
    fuzzCheck(profile == expected, "scanned \(show(input.prefix(200))) as \(profile), expected \(expected)")

    for allowsEightBit in [false, true] {
        let converter = MIMEConverter(allowsEightBit: allowsEightBit)
        let needsNothing = !expected.hasLongLines && (allowsEightBit || !expected.hasEightBitBody)
        let output: ByteBuffer
        do {
            output = try converter.convert(ByteBuffer(bytes: input))
        } catch {
            fuzzCheck(!needsNothing, "refused (\(error)) \(show(input.prefix(200))), which needs nothing")
            continue
        }
        let bytes = Array(output.readableBytesView)
        if needsNothing { fuzzCheck(bytes == input, "changed \(show(input.prefix(200))), which needs nothing, into \(show(bytes.prefix(200)))") }
        fuzzCheck(!referenceProfile(bytes).hasLongLines, "converted \(show(input.prefix(200))) into a long line: \(show(bytes.prefix(400)))")
        do {
            let again = try converter.convert(output)
            fuzzCheck(again == output, "converting \(show(bytes.prefix(200))) again changed it")
        } catch {
            fuzzFail("converting \(show(bytes.prefix(200))) again failed: \(error)")
        }
    }
    return 0
}

/// RFC 5322 §2.1: the header section ends at the first empty line; RFC 5321 §4.5.3.1.6: a line holds at most
/// 998 octets before its CRLF (999 with the CR before the LF; a last line without CRLF, 998).
func referenceProfile(_ text: [UInt8]) -> ContentProfile {
    var profile = ContentProfile()
    var inBody = false
    var line: [UInt8] = []
    for byte in text {
        if byte == UInt8(ascii: "\n") {
            if line.count > 999 { profile.hasLongLines = true }
            if !inBody && (line.isEmpty || line == [UInt8(ascii: "\r")]) { inBody = true }
            line = []
            continue
        }
        if byte >= 0x80 {
            if inBody { profile.hasEightBitBody = true } else { profile.hasEightBitHeaders = true }
        }
        line.append(byte)
    }
    if line.count > 998 { profile.hasLongLines = true }
    return profile
}
