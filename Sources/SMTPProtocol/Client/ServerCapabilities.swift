/// What a server offered in its EHLO reply (RFC 5321 §4.1.1.1): one keyword per line after the first,
/// with its parameters.
public struct ServerCapabilities: Hashable, Sendable {
    public var isExtended: Bool
    public var supportsPipelining = false
    /// RFC 1870 `SIZE`: `0` means no fixed limit; `nil` means not offered.
    public var maximumSize: Int?
    public var supports8BitMIME = false
    public var supportsDSN = false
    public var supportsSMTPUTF8 = false
    public var supportsStartTLS = false
    public var supportsEnhancedStatusCodes = false
    /// RFC 4954 `AUTH` mechanisms, uppercased.
    public var authMechanisms: Set<String> = []

    public init(isExtended: Bool) {
        self.isExtended = isExtended
    }

    /// Reads the lines of a `250` reply to EHLO.
    public init(ehloReply: SMTPReply) {
        self.init(isExtended: true)
        for line in ehloReply.lines.dropFirst() {
            let words = line.split(separator: " ")
            guard let keyword = words.first?.asciiUppercased else { continue }
            let parameters = words.dropFirst()
            switch keyword {
            case "PIPELINING": supportsPipelining = true
            case "SIZE": maximumSize = parameters.first.flatMap { Int($0) } ?? 0
            case "8BITMIME": supports8BitMIME = true
            case "DSN": supportsDSN = true
            case "SMTPUTF8": supportsSMTPUTF8 = true
            case "STARTTLS": supportsStartTLS = true
            case "ENHANCEDSTATUSCODES": supportsEnhancedStatusCodes = true
            case "AUTH": authMechanisms.formUnion(parameters.map { $0.asciiUppercased })
            default: continue
            }
        }
    }
}
