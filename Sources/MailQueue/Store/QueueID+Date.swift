import Foundation

extension QueueID {
    private static let digits: [UInt8: UInt64] = {
        var digits: [UInt8: UInt64] = [:]
        for (value, character) in "0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8.enumerated() {
            digits[character] = UInt64(value)
        }
        return digits
    }()

    /// When the id was made: its first ten characters are microseconds since 2020. `nil` when the text
    /// is not a queue id.
    public static func date(of queueID: String) -> Date? {
        guard isValid(queueID) else { return nil }
        var micros: UInt64 = 0
        for character in queueID.utf8.prefix(10) {
            guard let digit = digits[character] else { return nil }
            micros = micros << 5 | digit
        }
        return Date(timeIntervalSince1970: 1_577_836_800 + Double(micros) / 1_000_000)
    }
}
