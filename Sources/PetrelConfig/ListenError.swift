#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A listener that cannot be opened, said the way an operator can act on it: the address, the key that
/// names it, and what is wrong.
///
///     cannot listen on 127.0.0.1:2525 (inbound.listen): address already in use
public struct ListenError: Error, CustomStringConvertible, Sendable {
    public var address: ListenAddress
    /// The configuration key: `inbound.listen`, `inbound.submission_listen`, `metrics.listen`…
    public var key: String
    public var reason: String

    public init(address: ListenAddress, key: String, reason: String) {
        self.address = address
        self.key = key
        self.reason = reason
    }

    /// The system's words for `errno`, as in a sentence: `address already in use`, `permission denied`.
    public init(address: ListenAddress, key: String, errno code: Int32) {
        let words = String(cString: strerror(code))
        self.init(address: address, key: key, reason: words.prefix(1).lowercased() + words.dropFirst())
    }

    public var description: String { "cannot listen on \(address) (\(key)): \(reason)" }
}
