/// The sender addresses an authenticated user may give in MAIL FROM: addresses (`app@example.com`) or
/// domains (`@example.org`, that domain and not its subdomains), compared without case; empty: any.
/// The one rule, for the users file's lists as the session applies them.
public struct AllowedSenders: Sendable, Equatable {
    public let entries: [String]

    public init(_ entries: [String]) {
        self.entries = entries.map { $0.lowercased() }
    }

    /// Whether `address` may be used (`""` is the null sender, allowed only when any sender is).
    public func permits(_ address: String) -> Bool {
        if entries.isEmpty { return true }
        let address = address.lowercased()
        return entries.contains { allowed in
            allowed.hasPrefix("@") ? address.hasSuffix(allowed) : address == allowed
        }
    }
}
