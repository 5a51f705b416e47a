import NIOCore

/// Every way of cutting `input` into two pieces, and into single bytes: a decoder must give the same
/// result whichever way its input arrives (the swift-nio-imap "decoder verifier" idea).
enum Fragmentation {
    static func all(_ input: [UInt8]) -> [[ByteBuffer]] {
        var result: [[ByteBuffer]] = [[ByteBuffer(bytes: input)]]
        for cut in 1..<max(1, input.count) {
            result.append([ByteBuffer(bytes: input[..<cut]), ByteBuffer(bytes: input[cut...])])
        }
        result.append(input.map { ByteBuffer(bytes: [$0]) })
        return result
    }
}
