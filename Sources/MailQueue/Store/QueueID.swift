import Foundation

/// Makes the short ids that name a message in replies, logs and the CLI (`250 2.0.0 Ok: queued as ID`).
///
/// Fourteen characters of Crockford base32: ten of microseconds since 2020 (so ids sort by arrival)
/// and four random, with no `I`, `L`, `O` or `U` to misread.
public enum QueueID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    private static let epoch: Double = 1_577_836_800  // 2020-01-01T00:00:00Z

    public static func make(at date: Date = Date()) -> String {
        // 50 bits of microseconds last until 2055; 20 random bits separate ids made in one microsecond.
        var micros = UInt64(max(0, (date.timeIntervalSince1970 - epoch) * 1_000_000))
        var random = UInt64.random(in: 0..<(1 << 20))
        var characters = [UInt8](repeating: 0, count: 14)
        for index in stride(from: 13, through: 10, by: -1) {
            characters[index] = alphabet[Int(random & 31)]
            random >>= 5
        }
        for index in stride(from: 9, through: 0, by: -1) {
            characters[index] = alphabet[Int(micros & 31)]
            micros >>= 5
        }
        return String(decoding: characters, as: UTF8.self)
    }

    /// `true` when the text has the shape of a queue id.
    public static func isValid(_ text: String) -> Bool {
        text.utf8.count == 14 && text.utf8.allSatisfy { alphabet.contains($0) }
    }
}
