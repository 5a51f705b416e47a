/// Something about a client's connection or session rather than a message:
///
///     AUTH failed client=192.0.2.7 user=alice
///     connection refused: not in client_networks client=192.0.2.7
public struct SessionEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Outside `client_networks`: refused at connect.
        case refusedByClientNetworks
        /// Over the connection limits: refused at connect.
        case refusedTooManyConnections
        /// The client said nothing for too long, while sending commands or the message's text.
        case timedOut(isInData: Bool)
        /// The TLS handshake failed, and why.
        case tlsHandshakeFailed(reason: String)
        /// A message refused at the end of its data, with the reply the client got.
        case messageRefused(reply: String)
        case authenticated(user: String)
        /// A failed AUTH; the user only when such a user exists (a name that is none is often a password).
        case authenticationFailed(user: String?)
        /// AUTH refused without a check: too many failures from this address.
        case authenticationThrottled(user: String?)
        /// AUTH refused without a check: the server's password checks are saturated (`454 4.7.0`).
        case authenticationUnavailable(user: String?)
    }

    /// The client's IP address.
    public var client: String
    public var kind: Kind

    public init(client: String, _ kind: Kind) {
        self.client = client
        self.kind = kind
    }
}
