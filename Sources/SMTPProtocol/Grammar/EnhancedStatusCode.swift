/// An enhanced mail system status code, `class.subject.detail` (RFC 3463 §2), carried at the front of
/// a reply's text when `ENHANCEDSTATUSCODES` is offered (RFC 2034 §3).
public struct EnhancedStatusCode: Hashable, Sendable, CustomStringConvertible {
    public var codeClass: Int
    public var subject: Int
    public var detail: Int

    public init(_ codeClass: Int, _ subject: Int, _ detail: Int) {
        self.codeClass = codeClass
        self.subject = subject
        self.detail = detail
    }

    /// Parses `2.1.5`; `nil` when the text is not an enhanced status code.
    public init?(_ text: Substring) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let c = Int(parts[0]), [2, 4, 5].contains(c),
              let s = Int(parts[1]), (0...999).contains(s),
              let d = Int(parts[2]), (0...999).contains(d) else { return nil }
        self.init(c, s, d)
    }

    public var description: String { "\(codeClass).\(subject).\(detail)" }
}
