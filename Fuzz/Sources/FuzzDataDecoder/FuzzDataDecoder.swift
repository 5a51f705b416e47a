import FuzzSupport
import NIOCore
import SMTPProtocol

// The DATA decoder (RFC 5321 §4.1.1.4, §4.5.2): framing, dot-unstuffing, bare CR/LF and NUL (SMTP smuggling),
// the size limit; with DotStuffer, its inverse on the way out, and HeaderSectionScanner, which reads the
// decoded text as it streams.
//
// Properties, for each line-ending policy:
// 1. A reference decoder written from the specification (find the first `<CRLF>.<CRLF>`, split on CRLF,
//    unstuff, treat every other CR or LF as bare, and every NUL as refused or removed) gives the same text,
//    end, flags and size.
// 2. The input fed whole, in 2 and 3 random pieces, and byte by byte, with a random (often tiny) size
//    limit, gives the same end, flags, size and consumed count, and the same text (below the limit; above
//    it, text never exceeds the limit and is a prefix of the unlimited text).
// 3. DotStuffer then DataDecoder is the identity on CRLF-clean text (what the queue stores), for any chunking
//    of the stuffer's input, and ends exactly at the stuffer's end; on any bytes it equals the text with every
//    bare CR or LF made CRLF and every NUL removed (normalize policy).
// 4. What Petrel relays (the stuffed form of accepted text) holds no end of data that a lenient receiver
//    would see early: no `<LF>.<LF>`, `<LF>.<CR>`, `<CR>.<CR>` or `<CR>.<LF>` before its real end.
// 5. HeaderSectionScanner reads the same fields whatever the chunking of the decoded text.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    var choices = FuzzChoices(input)
    for policy in [DataDecoder.LineEndingPolicy.reject, .normalize] {
        checkAgainstReference(input, policy: policy)
        checkFragmentation(input, policy: policy, choices: &choices)
    }
    checkDotStufferRoundTrip(input, choices: &choices)
    return 0
}

// MARK: - Running the decoder

struct Decoded: Equatable {
    var output: [UInt8]
    var isFinished: Bool
    var consumed: Int
    var sawBareLineEnding: Bool
    var sawNUL: Bool
    var decodedSize: Int
    var exceededMaximumSize: Bool
    var isDiscarding: Bool
}

func decode(_ pieces: [[UInt8]], policy: DataDecoder.LineEndingPolicy, maximumSize: Int = .max) -> Decoded {
    var decoder = DataDecoder(maximumSize: maximumSize, lineEndingPolicy: policy)
    var output = ByteBuffer()
    var isFinished = false
    var consumed = 0
    // As the server does: bytes accumulate in one buffer, and the decoder takes what it can.
    var buffer = ByteBuffer()
    for piece in pieces {
        buffer.writeBytes(piece)
        let before = buffer.readerIndex
        isFinished = decoder.decode(&buffer, into: &output)
        fuzzCheck(buffer.readerIndex >= before, "the decoder moved the reader index backwards")
        consumed += buffer.readerIndex - before
        if isFinished { break }
        fuzzCheck(buffer.readableBytes == 0, "the decoder left \(buffer.readableBytes) bytes unread without finishing")
    }
    return Decoded(
        output: Array(output.readableBytesView), isFinished: isFinished, consumed: consumed,
        sawBareLineEnding: decoder.sawBareLineEnding, sawNUL: decoder.sawNUL, decodedSize: decoder.decodedSize,
        exceededMaximumSize: decoder.exceededMaximumSize, isDiscarding: decoder.isDiscarding
    )
}

// MARK: - 1. The reference decoder

struct Reference {
    var output: [UInt8] = []
    var consumed = 0
    var sawBareLineEnding = false
    var sawNUL = false
    var decodedSize = 0
}

/// RFC 5321 §4.5.2 and §2.3.8 read literally, on the whole input at once. `nil` when the input has no end
/// of data. The end of data is `.CRLF` at the very start or right after a CRLF; lines are split on CRLF
/// only; a line's leading `.` is removed unless a bare CR or LF follows it; every other CR or LF is bare;
/// a NUL is removed (normalize) or makes the message refused (reject).
func referenceDecode(_ input: [UInt8], policy: DataDecoder.LineEndingPolicy) -> Reference? {
    let cr: UInt8 = 13, lf: UInt8 = 10, dot: UInt8 = 46
    var end: Int?
    var index = 0
    while index + 3 <= input.count {
        if input[index] == dot, input[index + 1] == cr, input[index + 2] == lf,
           index == 0 || (index >= 2 && input[index - 2] == cr && input[index - 1] == lf) {
            end = index
            break
        }
        index += 1
    }
    guard let end else { return nil }
    var result = Reference()
    result.consumed = end + 3
    var isTruncated = false
    func emit(_ bytes: [UInt8]) {
        result.decodedSize += bytes.count
        if !isTruncated { result.output += bytes }
    }
    var lineStart = 0
    while lineStart < end {
        var lineEnd = lineStart
        while !(input[lineEnd] == cr && input[lineEnd + 1] == lf) { lineEnd += 1 }
        var text = input[lineStart..<lineEnd]
        if text.first == dot, text.count >= 2, text[text.startIndex + 1] != cr, text[text.startIndex + 1] != lf {
            text = text.dropFirst()
        }
        for byte in text {
            if byte == 0 {
                // RFC 5322 §3.5: no NUL in message text; removed, or the message refused.
                result.sawNUL = true
                if policy == .reject { isTruncated = true }
            } else if byte == cr || byte == lf {
                result.sawBareLineEnding = true
                switch policy {
                case .normalize: emit([cr, lf])
                case .reject: isTruncated = true
                }
            } else {
                emit([byte])
            }
        }
        emit([cr, lf])
        lineStart = lineEnd + 2
    }
    return result
}

func checkAgainstReference(_ input: [UInt8], policy: DataDecoder.LineEndingPolicy) {
    // With an end of data appended, both must find an end (perhaps an earlier one in the input).
    let terminated = input + [13, 10, 46, 13, 10]
    guard let expected = referenceDecode(terminated, policy: policy) else {
        fuzzFail("the reference found no end of data in a terminated input")
    }
    let actual = decode([terminated], policy: policy)
    func context() -> String { "policy \(policy), input \(show(terminated))" }
    fuzzCheck(actual.isFinished, "no end of data found; \(context())")
    fuzzCheck(actual.consumed == expected.consumed,
              "end of data after \(actual.consumed) bytes, the reference says \(expected.consumed); \(context())")
    fuzzCheck(actual.output == expected.output,
              "decoded \(show(actual.output)), the reference says \(show(expected.output)); \(context())")
    fuzzCheck(actual.sawBareLineEnding == expected.sawBareLineEnding,
              "sawBareLineEnding \(actual.sawBareLineEnding), the reference says \(expected.sawBareLineEnding); \(context())")
    fuzzCheck(actual.sawNUL == expected.sawNUL,
              "sawNUL \(actual.sawNUL), the reference says \(expected.sawNUL); \(context())")
    fuzzCheck(actual.decodedSize == expected.decodedSize,
              "decodedSize \(actual.decodedSize), the reference says \(expected.decodedSize); \(context())")
    if policy == .normalize {
        checkCRLFClean(actual.output, context())
        // What was accepted is relayed stuffed; the next hop must read back exactly it.
        checkRelayed(actual.output, context())
    } else if !actual.sawBareLineEnding && !actual.sawNUL {
        checkCRLFClean(actual.output, context())
        checkRelayed(actual.output, context())
    }
}

/// Every CR is followed by LF and every LF preceded by CR, and there is no NUL.
func checkCRLFClean(_ text: [UInt8], _ context: @autoclosure () -> String) {
    for index in text.indices {
        fuzzCheck(text[index] != 0, "NUL in accepted text at \(index); \(context())")
        if text[index] == 13 {
            fuzzCheck(index + 1 < text.count && text[index + 1] == 10, "bare CR in accepted text at \(index); \(context())")
        } else if text[index] == 10 {
            fuzzCheck(index > 0 && text[index - 1] == 13, "bare LF in accepted text at \(index); \(context())")
        }
    }
}

// MARK: - 2. Fragmentation and the size limit

func checkFragmentation(_ input: [UInt8], policy: DataDecoder.LineEndingPolicy, choices: inout FuzzChoices) {
    let unlimited = decode([input], policy: policy)
    // A limit around the decoded size, so that both sides of it are exercised; sometimes none.
    let maximumSize = choices.int(in: 0...3) == 0 ? Int.max : choices.int(in: 0...(unlimited.decodedSize + 2))
    var first: Decoded?
    for pieces in fragmentations(of: input, choices: &choices) {
        let actual = decode(pieces, policy: policy, maximumSize: maximumSize)
        func context() -> String { "policy \(policy), maximumSize \(maximumSize), \(pieces.count) pieces \(pieces.map { show($0) })" }
        fuzzCheck(actual.isFinished == unlimited.isFinished && actual.consumed == unlimited.consumed,
                  "finished \(actual.isFinished) after \(actual.consumed), whole and unlimited \(unlimited.isFinished) after \(unlimited.consumed); \(context())")
        fuzzCheck(actual.sawBareLineEnding == unlimited.sawBareLineEnding && actual.sawNUL == unlimited.sawNUL,
                  "sawBareLineEnding or sawNUL differs with the pieces; \(context())")
        fuzzCheck(actual.decodedSize == unlimited.decodedSize,
                  "decodedSize \(actual.decodedSize), whole and unlimited \(unlimited.decodedSize); \(context())")
        fuzzCheck(actual.exceededMaximumSize == (unlimited.decodedSize > maximumSize),
                  "exceededMaximumSize \(actual.exceededMaximumSize) with size \(actual.decodedSize); \(context())")
        fuzzCheck(actual.output.count <= maximumSize, "wrote \(actual.output.count) bytes over the limit; \(context())")
        fuzzCheck(unlimited.output.starts(with: actual.output),
                  "text \(show(actual.output)) is not a prefix of \(show(unlimited.output)); \(context())")
        if !actual.exceededMaximumSize {
            fuzzCheck(actual.output == unlimited.output, "text \(show(actual.output)), whole \(show(unlimited.output)); \(context())")
        }
        if let first, !actual.exceededMaximumSize {
            fuzzCheck(actual == first, "\(actual) differs from \(first); \(context())")
        }
        if first == nil { first = actual }
    }
    checkHeaderScanner(unlimited.output, choices: &choices)
}

// MARK: - 3 and 4. DotStuffer, and what the next hop reads

func stuff(_ pieces: [[UInt8]]) -> [UInt8] {
    var stuffer = DotStuffer()
    var output = ByteBuffer()
    for piece in pieces { stuffer.stuff(ByteBuffer(bytes: piece), into: &output) }
    stuffer.finish(into: &output)
    return Array(output.readableBytesView)
}

/// `text` with every CR or LF that is not part of a CRLF made into CRLF, and every NUL removed.
func normalizingBareLineEndings(_ text: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    output.reserveCapacity(text.count)
    var index = 0
    while index < text.count {
        let byte = text[index]
        if byte == 13, index + 1 < text.count, text[index + 1] == 10 {
            output += crlf
            index += 2
        } else if byte == 13 || byte == 10 {
            output += crlf
            index += 1
        } else if byte == 0 {
            index += 1
        } else {
            output.append(byte)
            index += 1
        }
    }
    return output
}

/// The stuffed form of accepted (CRLF-clean) text: decoded back exactly, ending exactly at its end, with no
/// early end of data for a receiver that also takes bare CR or LF as line endings.
func checkRelayed(_ text: [UInt8], _ context: @autoclosure () -> String) {
    let wire = stuff([text])
    let next = decode([wire], policy: .reject)
    let expected = text.isEmpty || text.hasSuffix(crlf) ? text : text + crlf
    fuzzCheck(next.isFinished && next.consumed == wire.count,
              "the next hop's end of data is at \(next.consumed) of \(wire.count): \(show(wire)); \(context())")
    fuzzCheck(!next.sawBareLineEnding && !next.sawNUL && next.output == expected,
              "the next hop reads \(show(next.output)), sent \(show(expected)); \(context())")
    let body = wire.dropLast(3)  // the real `.CRLF`
    var index = body.startIndex
    while index + 2 < body.endIndex {
        let a = body[index], b = body[index + 1], c = body[index + 2]
        if (a == 13 || a == 10) && b == 46 && (c == 13 || c == 10) {
            fuzzFail("a lenient receiver would see an end of data at \(index) in \(show(wire)); \(context())")
        }
        index += 1
    }
}

func checkDotStufferRoundTrip(_ input: [UInt8], choices: inout FuzzChoices) {
    // Any bytes, in any chunks: the normalizing decoder reads them back with bare line endings made CRLF.
    for pieces in fragmentations(of: input, choices: &choices) {
        let wire = stuff(pieces)
        let padded = input.isEmpty || input.hasSuffix(crlf) ? input : input + crlf
        let expected = normalizingBareLineEndings(padded)
        let back = decode([wire], policy: .normalize)
        func context() -> String { "input \(show(input)) in \(pieces.count) pieces, on the wire \(show(wire))" }
        fuzzCheck(back.isFinished && back.consumed == wire.count,
                  "the decoder's end of data is at \(back.consumed) of \(wire.count); \(context())")
        fuzzCheck(back.output == expected, "decoded \(show(back.output)), expected \(show(expected)); \(context())")
    }
    // CRLF-clean text (what the queue stores) comes back exactly, under either policy.
    let clean = normalizingBareLineEndings(input)
    for pieces in fragmentations(of: clean, choices: &choices) {
        let wire = stuff(pieces)
        let expected = clean.isEmpty || clean.hasSuffix(crlf) ? clean : clean + crlf
        for policy in [DataDecoder.LineEndingPolicy.reject, .normalize] {
            let back = decode(choices.pieces(of: wire, count: 2), policy: policy)
            func context() -> String { "text \(show(clean)) in \(pieces.count) pieces, on the wire \(show(wire)), policy \(policy)" }
            fuzzCheck(back.isFinished && back.consumed == wire.count,
                      "the decoder's end of data is at \(back.consumed) of \(wire.count); \(context())")
            fuzzCheck(!back.sawBareLineEnding && !back.sawNUL, "a bare line ending or NUL in stuffed clean text; \(context())")
            fuzzCheck(back.output == expected, "decoded \(show(back.output)), expected \(show(expected)); \(context())")
        }
    }
}

// MARK: - 5. HeaderSectionScanner

struct HeaderFacts: Equatable {
    var receivedCount: Int
    var hasDate: Bool
    var hasMessageID: Bool
    var isFinished: Bool
}

func scanHeaders(_ pieces: [[UInt8]]) -> HeaderFacts {
    var scanner = HeaderSectionScanner()
    for piece in pieces { scanner.scan(ByteBuffer(bytes: piece)) }
    return HeaderFacts(receivedCount: scanner.receivedCount, hasDate: scanner.hasDate,
                       hasMessageID: scanner.hasMessageID, isFinished: scanner.isFinished)
}

func checkHeaderScanner(_ text: [UInt8], choices: inout FuzzChoices) {
    let whole = scanHeaders([text])
    for pieces in fragmentations(of: text, choices: &choices).dropFirst() {
        let facts = scanHeaders(pieces)
        fuzzCheck(facts == whole, "headers \(facts), whole \(whole), pieces \(pieces.map { show($0) })")
    }
}
