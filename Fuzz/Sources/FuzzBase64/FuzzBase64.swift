import FuzzSupport
import SMTPProtocol

// Base64 (RFC 4648 §4) as SASL uses it (RFC 4954 §4, AUTH PLAIN and LOGIN): the server decodes what a client
// sends before it is authenticated.
//
// Properties:
// 1. decode(encode(x)) == x for any bytes x, and the encoding has the right length and alphabet.
// 2. Whatever decode accepts is padded base64 of the alphabet: a multiple of 4 characters, `=` only at the end,
//    at most two; its decoding has the right length, and encoding that decoding again gives the same text
//    except, at most, in the last character before the padding (RFC 4648 §3.5 pad bits).
// 3. decode(encode(decode(s))) == decode(s).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))

    let encoded = Base64.encode(input)
    let encodedBytes = Array(encoded.utf8)
    fuzzCheck(encodedBytes.count == (input.count + 2) / 3 * 4, "encoded \(show(input)) in \(encodedBytes.count) characters")
    fuzzCheck(encodedBytes.allSatisfy(isBase64Character), "encoded \(show(input)) as \(encoded.debugDescription)")
    fuzzCheck(Base64.decode(encoded) == input, "\(show(input)) encoded as \(encoded) decodes as \(String(describing: Base64.decode(encoded)))")

    let text = String(decoding: input, as: UTF8.self)
    guard let decoded = Base64.decode(text) else { return 0 }
    let bytes = Array(text.utf8)
    func context() -> String { "\(show(bytes)) decodes as \(show(decoded))" }
    fuzzCheck(bytes.count % 4 == 0, "not a multiple of 4 characters; \(context())")
    let padding = bytes.reversed().prefix { $0 == UInt8(ascii: "=") }.count
    fuzzCheck(padding <= 2, "\(padding) padding characters; \(context())")
    fuzzCheck(bytes.dropLast(padding).allSatisfy { isBase64Character($0) && $0 != UInt8(ascii: "=") }, "a character outside the alphabet; \(context())")
    fuzzCheck(decoded.count == bytes.count / 4 * 3 - padding, "\(decoded.count) octets decoded; \(context())")
    let again = Array(Base64.encode(decoded).utf8)
    fuzzCheck(again.count == bytes.count, "encoded again as \(show(again)); \(context())")
    let lastData = bytes.count - padding - 1
    for index in bytes.indices where index != lastData {
        fuzzCheck(again[index] == bytes[index], "encoded again as \(show(again)); \(context())")
    }
    fuzzCheck(Base64.decode(String(decoding: again, as: UTF8.self)) == decoded, "encoded again as \(show(again)), which decodes differently; \(context())")
    return 0
}

func isBase64Character(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
         UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="):
        return true
    default:
        return false
    }
}
