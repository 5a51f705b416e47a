extension StringProtocol {
    /// Upper case in ASCII only, for SMTP keywords (RFC 5321 §2.4: verbs and parameter names are
    /// case-insensitive). Unicode case mapping would take `ſ` (long s) for `S` or `ı` (dotless i) for `I`,
    /// and so accept a keyword that no other implementation reads the same way.
    var asciiUppercased: String {
        String(decoding: utf8.map { (0x61...0x7A).contains($0) ? $0 - 0x20 : $0 }, as: UTF8.self)
    }
}
