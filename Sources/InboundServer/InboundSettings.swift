import NIOCore
import PetrelConfig
import SMTPProtocol

/// The part of the configuration the inbound server uses, taken whole when a connection opens, so
/// that a reload never changes the rules in the middle of a session.
struct InboundSettings: Sendable {
    var session: ServerSessionConfiguration
    var clientNetworks: NetworkList
    var relayNetworks: NetworkList
    var relayDomains: Set<String>
    var commandTimeout: Duration
    var dataTimeout: Duration
    var maxQueueLifetime: Duration
    var maxConnections: Int
    var maxConnectionsPerClient: Int

    init(_ configuration: PetrelConfiguration) {
        session = ServerSessionConfiguration(
            hostname: configuration.hostname,
            maximumMessageSize: configuration.inbound.maxMessageSize,
            maximumRecipients: configuration.inbound.maxRecipients,
            maximumReceivedHeaders: configuration.inbound.maxReceivedHeaders,
            lineEndingPolicy: configuration.inbound.bareLineEndings
        )
        clientNetworks = configuration.access.clientNetworks
        relayNetworks = configuration.access.relayNetworks
        relayDomains = Set(configuration.access.relayDomains)
        commandTimeout = configuration.inbound.commandTimeout
        dataTimeout = configuration.inbound.dataTimeout
        maxQueueLifetime = configuration.delivery.maxQueueLifetime
        maxConnections = configuration.inbound.maxConnections
        maxConnectionsPerClient = configuration.inbound.maxConnectionsPerClient
    }

    /// `client_networks`: when set, only those networks may connect at all.
    func admitsClient(_ address: IPAddress) -> Bool {
        clientNetworks.blocks.isEmpty || clientNetworks.contains(address)
    }

    func relayPolicy(for address: IPAddress) -> RelayPolicy {
        RelayPolicy(clientMayRelay: relayNetworks.contains(address), relayDomains: relayDomains)
    }
}

/// What a listener is for.
public enum ListenerKind: String, Sendable, CaseIterable {
    /// Port 25 style: `client_networks` and `relay_networks` apply; AUTH lets a client relay from anywhere.
    case relay
    /// RFC 6409 submission: STARTTLS, then AUTH, before MAIL; `client_networks` does not apply.
    case submission
    /// RFC 8314 submission over implicit TLS: AUTH before MAIL.
    case submissions
}

extension InboundSettings {
    func sessionConfiguration(for listener: ListenerKind, hasTLS: Bool, hasUsers: Bool) -> ServerSessionConfiguration {
        var configuration = session
        configuration.isSTARTTLSAvailable = hasTLS && listener != .submissions
        configuration.isAuthAvailable = hasUsers
        configuration.requiresAuthentication = listener != .relay
        return configuration
    }
}
