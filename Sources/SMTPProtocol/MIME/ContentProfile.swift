/// What a message's text asks of the next hop, found in one pass over it (``ContentScanner``).
public struct ContentProfile: Hashable, Sendable {
    /// An octet over 127 in the top-level header section: RFC 6532 UTF-8 header fields, which only an
    /// SMTPUTF8 session may carry (RFC 6531 §3.2).
    public var hasEightBitHeaders = false
    /// An octet over 127 after the header section: the body needs 8BITMIME (RFC 6152 §3) or a conversion.
    public var hasEightBitBody = false
    /// A line longer than 998 octets before its CRLF anywhere in the text (RFC 5321 §4.5.3.1.6).
    public var hasLongLines = false

    public init(hasEightBitHeaders: Bool = false, hasEightBitBody: Bool = false, hasLongLines: Bool = false) {
        self.hasEightBitHeaders = hasEightBitHeaders
        self.hasEightBitBody = hasEightBitBody
        self.hasLongLines = hasLongLines
    }
}
