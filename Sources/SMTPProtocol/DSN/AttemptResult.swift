/// What an attempt to deliver to a recipient ended with: a server's reply, or an error of the relay's own
/// where no server answered (connection refused, a timeout, a DNS, TLS or conversion failure).
///
/// The two are reported apart (RFC 3464 §2.3.5–2.3.6): only a server that answered is a `Remote-MTA`, and
/// only its reply is an `smtp` diagnostic; a local error gets the extension type `X-Petrel`, so no
/// reader takes the relay's own words for a remote server's.
public enum AttemptResult: Hashable, Sendable {
    /// The server at `relay` (`host[ip]:port`) said this.
    case reply(SMTPReply, relay: String)
    /// No server said anything about it.
    case localError(LocalError)

    /// The enhanced status (RFC 3463) the result carries: the reply's own, else its class with `.0.0`; a
    /// local error's.
    public var status: EnhancedStatusCode {
        switch self {
        case .reply(let reply, _): reply.enhancedCode ?? EnhancedStatusCode(reply.code / 100, 0, 0)
        case .localError(let error): error.status
        }
    }

    /// RFC 3464 §2.3.6: `smtp; 550 5.1.1 User unknown`, or `X-Petrel; connect to …: connection refused`.
    public var diagnosticCode: String {
        switch self {
        case .reply(let reply, _): "smtp; \(reply)"
        case .localError(let error): "X-Petrel; \(error.description)"
        }
    }

    /// RFC 3464 §2.3.5: the host that replied, `mx.example` of `mx.example[192.0.2.1]:25`; `nil` for a
    /// local error.
    public var remoteMTA: String? {
        guard case .reply(_, let relay) = self else { return nil }
        return String(relay.prefix { $0 != "[" })
    }

    /// One line for the log and the operator: the reply as sent, or the local error's description.
    public var text: String {
        switch self {
        case .reply(let reply, _): reply.description
        case .localError(let error): error.description
        }
    }
}

/// An error of the relay's own that ended an attempt, with the status it means (RFC 3463): `4.4.1` no
/// answer from the host, `4.4.2` a connection lost, `4.4.3` a routing server failure, `5.1.2` a bad
/// destination system, `4.7.x` TLS, `5.6.x` a conversion the message needed and could not get.
public struct LocalError: Hashable, Sendable, CustomStringConvertible {
    public var status: EnhancedStatusCode
    /// What went wrong, naming the host when there was one: `connect to mx.example[192.0.2.1]:25: Connection refused`.
    public var description: String

    public init(status: EnhancedStatusCode, description: String) {
        self.status = status
        self.description = description
    }

    /// A reply the relay made up to carry the error (`451 4.4.1 …`): its text, its status or the reply's class.
    public init(_ reply: SMTPReply) {
        self.init(status: reply.enhancedCode ?? EnhancedStatusCode(reply.code / 100, 0, 0), description: reply.lines.joined(separator: " "))
    }

    public var isPermanent: Bool { status.codeClass == 5 }
}
