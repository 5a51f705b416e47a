/// What a server session needs to know of the server's configuration.
public struct ServerSessionConfiguration: Hashable, Sendable {
    public var hostname: String
    /// RFC 1870: the `SIZE` advertised and enforced, in octets.
    public var maximumMessageSize: Int
    /// RFC 5321 §4.5.3.1.8: at least 100 must be accepted.
    public var maximumRecipients: Int
    /// RFC 5321 §6.3: a message with more `Received:` fields than this is taken to be looping.
    public var maximumReceivedHeaders: Int
    /// How many rejected commands a client may send before it is disconnected.
    public var maximumErrors: Int
    public var lineEndingPolicy: DataDecoder.LineEndingPolicy
    /// A certificate is configured: STARTTLS is offered (RFC 3207) until the session is encrypted.
    public var isSTARTTLSAvailable: Bool
    /// Users exist: AUTH is offered once the session is encrypted (RFC 4954 §4, RFC 8314 §5).
    public var isAuthAvailable: Bool
    /// A submission listener (RFC 6409 §4.3): AUTH is required before MAIL.
    public var requiresAuthentication: Bool
    /// Failed AUTH attempts before the client is disconnected.
    public var maximumAuthFailures: Int

    public init(
        hostname: String,
        maximumMessageSize: Int = 25 * 1024 * 1024,
        maximumRecipients: Int = 100,
        maximumReceivedHeaders: Int = 100,
        maximumErrors: Int = 10,
        lineEndingPolicy: DataDecoder.LineEndingPolicy = .reject,
        isSTARTTLSAvailable: Bool = false,
        isAuthAvailable: Bool = false,
        requiresAuthentication: Bool = false,
        maximumAuthFailures: Int = 3
    ) {
        self.isSTARTTLSAvailable = isSTARTTLSAvailable
        self.isAuthAvailable = isAuthAvailable
        self.requiresAuthentication = requiresAuthentication
        self.maximumAuthFailures = maximumAuthFailures
        self.hostname = hostname
        self.maximumMessageSize = maximumMessageSize
        self.maximumRecipients = maximumRecipients
        self.maximumReceivedHeaders = maximumReceivedHeaders
        self.maximumErrors = maximumErrors
        self.lineEndingPolicy = lineEndingPolicy
    }
}
