import NIOSSL

/// A client TLS context and how it treats the server's certificate.
///
/// Toward MX hosts, TLS is opportunistic (RFC 7435): encrypt whenever STARTTLS is offered, without
/// checking the certificate, since MX certificates are rarely verifiable. Under `required`, the
/// certificate is verified against the system trust store and the host name.
public struct ClientTLS: Sendable {
    public let context: NIOSSLContext
    public let verifiesCertificate: Bool

    public static func opportunistic() throws -> ClientTLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .none
        return ClientTLS(context: try NIOSSLContext(configuration: configuration), verifiesCertificate: false)
    }

    /// - Parameter trustRoots: the CA file to trust; `nil`: the system trust store.
    public static func verified(trustRoots: String? = nil) throws -> ClientTLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let trustRoots {
            configuration.trustRoots = .file(trustRoots)
        }
        return ClientTLS(context: try NIOSSLContext(configuration: configuration), verifiesCertificate: true)
    }
}
