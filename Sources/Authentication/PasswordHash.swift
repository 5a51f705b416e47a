import CCrypt
import Foundation

/// Slow, salted password hashes through the system's libcrypt (libxcrypt): yescrypt, `$y$…`, the
/// default of Debian's own `/etc/shadow`. Only hashes are ever stored.
public enum PasswordHash {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// A new hash of `password` with a fresh random salt (libcrypt reads it from the OS).
    public static func make(_ password: String) throws -> String {
        var setting = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        guard crypt_gensalt_rn("$y$", 0, nil, 0, &setting, Int32(setting.count)) != nil else {
            throw Failure(description: "libcrypt cannot make a yescrypt salt (errno \(errno))")
        }
        guard let hash = compute(password, setting: setting.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }), hash.hasPrefix("$y$") else {
            throw Failure(description: "libcrypt cannot hash with yescrypt")
        }
        return hash
    }

    /// Whether `password` matches `hash`, compared in constant time.
    public static func verify(_ password: String, against hash: String) -> Bool {
        guard let computed = compute(password, setting: hash) else { return false }
        return constantTimeEquals(Array(computed.utf8), Array(hash.utf8))
    }

    /// `crypt_r` with its large state on the heap; `nil` when libcrypt refuses the setting.
    static func compute(_ password: String, setting: String) -> String? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, setting, data) else { return nil }
        let text = String(cString: result)
        // libcrypt signals failure with a string starting with "*".
        return text.hasPrefix("*") ? nil : text
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
