/// A client command (RFC 5321 §4.1.1), parsed from one line without its CRLF.
public enum SMTPCommand: Hashable, Sendable {
    case helo(String)
    case ehlo(String)
    /// `MAIL FROM:<reverse-path>`; `nil` is the null reverse path `<>`.
    case mail(Mailbox?, MailParameters)
    case recipient(Mailbox, RecipientParameters)
    case data
    case reset
    case noop
    case quit
    case help
    case verify
    case expand
    case startTLS
    case auth(String)

    /// Parses one command line (without CRLF). Verbs are case-insensitive (RFC 5321 §2.4), in ASCII only:
    /// Unicode case mapping would take `MAıL` (dotless i) or `ſTARTTLS` (long s) for `MAIL` and `STARTTLS`.
    public init(parsing line: Substring) throws(SMTPSyntaxError) {
        let verbEnd = line.firstIndex(of: " ") ?? line.endIndex
        let verb = line[..<verbEnd].asciiUppercased
        let argument = verbEnd < line.endIndex ? line[line.index(after: verbEnd)...] : ""

        switch verb {
        case "HELO":
            self = .helo(try Self.parseGreetingDomain(argument))
        case "EHLO":
            self = .ehlo(try Self.parseGreetingDomain(argument))
        case "MAIL":
            guard let rest = Self.dropPrefix("FROM:", from: argument) else { throw .malformedCommand }
            var parser = PathParser(rest)
            let path = try parser.parseReversePath()
            self = .mail(path, try MailParameters(parsing: parser.remainder))
        case "RCPT":
            guard let rest = Self.dropPrefix("TO:", from: argument) else { throw .malformedCommand }
            var parser = PathParser(rest)
            let path = try parser.parsePath()
            self = .recipient(path, try RecipientParameters(parsing: parser.remainder))
        case "DATA":
            guard argument.isEmpty else { throw .malformedCommand }
            self = .data
        case "RSET":
            guard argument.isEmpty else { throw .malformedCommand }
            self = .reset
        case "NOOP":
            self = .noop  // RFC 5321 §4.1.1.9: a parameter is allowed and ignored.
        case "QUIT":
            guard argument.isEmpty else { throw .malformedCommand }
            self = .quit
        case "HELP":
            self = .help
        case "VRFY":
            guard !argument.isEmpty else { throw .malformedCommand }
            self = .verify
        case "EXPN":
            guard !argument.isEmpty else { throw .malformedCommand }
            self = .expand
        case "STARTTLS":
            guard argument.isEmpty else { throw .malformedCommand }
            self = .startTLS
        case "AUTH":
            guard !argument.isEmpty else { throw .malformedCommand }
            self = .auth(String(argument))
        default:
            throw .unknownCommand
        }
    }

    /// The command's verb, for logs and limits.
    public var verb: String {
        switch self {
        case .helo: "HELO"
        case .ehlo: "EHLO"
        case .mail: "MAIL"
        case .recipient: "RCPT"
        case .data: "DATA"
        case .reset: "RSET"
        case .noop: "NOOP"
        case .quit: "QUIT"
        case .help: "HELP"
        case .verify: "VRFY"
        case .expand: "EXPN"
        case .startTLS: "STARTTLS"
        case .auth: "AUTH"
        }
    }

    /// `Domain / address-literal` after HELO/EHLO. Clients in the wild send odd names, so anything
    /// printable without spaces is accepted and recorded; only emptiness is an error.
    private static func parseGreetingDomain(_ argument: Substring) throws(SMTPSyntaxError) -> String {
        let name = argument.trimmingTrailingSpaces
        guard !name.isEmpty, !name.contains(" "),
              name.utf8.allSatisfy({ $0 > 32 && $0 != 127 }) else { throw .malformedCommand }
        return String(name)
    }

    private static func dropPrefix(_ prefix: String, from argument: Substring) -> Substring? {
        guard argument.count >= prefix.count,
              argument.prefix(prefix.count).asciiUppercased == prefix else { return nil }
        return argument.dropFirst(prefix.count)
    }
}

extension Substring {
    var trimmingTrailingSpaces: Substring {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
