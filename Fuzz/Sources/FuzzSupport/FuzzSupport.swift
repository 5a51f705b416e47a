#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFuzzerDriver
import NIOCore
import SMTPProtocol

// Shared by every fuzz target: property checks that end the run the way libFuzzer recognises (SIGABRT,
// so the input is saved as a crash artifact), and the choices a target makes about one input.

/// Runs libFuzzer on the target's `LLVMFuzzerTestOneInput`, and returns its exit status. Each target calls
/// this from its `main.swift`: SwiftPM names an executable's entry point `<Module>_main` and links with
/// `--defsym main=<Module>_main`, which takes the place of libFuzzer's own `main`.
public func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    petrel_run_fuzzer(argc, argv)
}

/// The C library's `exit`, so that a target's `main.swift` needs no import of its own.
public func exit(_ status: CInt) -> Never {
    #if canImport(Glibc)
    Glibc.exit(status)
    #else
    Darwin.exit(status)
    #endif
}

/// Stops the run, and so makes libFuzzer save the input, when a property does not hold.
@inline(never)
public func fuzzCheck(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() { fuzzFail(message(), file: file, line: line) }
}

@inline(never)
public func fuzzFail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    // One unbuffered write(2) to the descriptor: the C `stderr` stream is a global variable.
    let text = Array("PROPERTY FAILED (\(file):\(line)): \(message)\n".utf8)
    _ = text.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    abort()
}

/// The input as an escaped string for messages: `"a\r\nb"`.
public func show<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    var text = "\""
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "\r"): text += "\\r"
        case UInt8(ascii: "\n"): text += "\\n"
        case UInt8(ascii: "\""): text += "\\\""
        case UInt8(ascii: "\\"): text += "\\\\"
        case 32...126: text.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = String(byte, radix: 16)
            text += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return text + "\""
}

public func show(_ buffer: ByteBuffer) -> String { show(buffer.readableBytesView) }

/// Deterministic choices derived from the input itself (FNV-1a, then splitmix64), so that seed files stay
/// plain SMTP text with no control bytes, and the same input always makes the same choices.
public struct FuzzChoices {
    private var state: UInt64

    public init<Bytes: Sequence>(_ bytes: Bytes, salt: UInt64 = 0) where Bytes.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ salt
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        state = hash
    }

    public mutating func next() -> UInt64 {
        state = state &+ 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let width = UInt64(range.upperBound - range.lowerBound) &+ 1
        if width == 0 { return Int(truncatingIfNeeded: next()) }
        return range.lowerBound + Int(next() % width)
    }

    public mutating func bool() -> Bool { next() & 1 == 1 }

    /// `bytes` cut into `pieces` consecutive pieces (some possibly empty) at random places.
    public mutating func pieces(of bytes: [UInt8], count pieces: Int) -> [[UInt8]] {
        guard pieces > 1 else { return [bytes] }
        var cuts = (1..<pieces).map { _ in int(in: 0...bytes.count) }
        cuts.sort()
        var result: [[UInt8]] = []
        var start = 0
        for cut in cuts {
            result.append(Array(bytes[start..<cut]))
            start = cut
        }
        result.append(Array(bytes[start...]))
        return result
    }
}

/// Every byte on its own: the hardest fragmentation for a streaming decoder.
public func singleBytes(_ bytes: [UInt8]) -> [[UInt8]] { bytes.map { [$0] } }

/// The pieces a target feeds one input in: whole, cut in two and in three at places the input chooses, and
/// (for short inputs, to keep executions fast) one byte at a time.
public func fragmentations(of bytes: [UInt8], choices: inout FuzzChoices, bytewiseLimit: Int = 128) -> [[[UInt8]]] {
    var result = [[bytes], choices.pieces(of: bytes, count: 2), choices.pieces(of: bytes, count: 3)]
    if bytes.count <= bytewiseLimit { result.append(singleBytes(bytes)) }
    return result
}

extension Array where Element == UInt8 {
    public func contains(subsequence needle: [UInt8]) -> Bool { firstRange(of: needle) != nil }

    public func hasSuffix(_ suffix: [UInt8]) -> Bool {
        count >= suffix.count && self[(count - suffix.count)...].elementsEqual(suffix)
    }
}

public let crlf: [UInt8] = [13, 10]
