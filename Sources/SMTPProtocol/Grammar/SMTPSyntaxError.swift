/// Why a command line could not be parsed. Each case maps to the reply RFC 5321 §4.2 and RFC 3463
/// prescribe; the session turns it into that reply.
public enum SMTPSyntaxError: Error, Hashable, Sendable {
    case unknownCommand
    case malformedCommand
    case malformedPath
    case malformedDomain
    case pathTooLong
    case invalidUTF8
    case unknownParameter(String)
    case malformedParameter(String)
    case duplicateParameter(String)
}
