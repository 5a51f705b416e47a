import Foundation
import SMTPProtocol

/// Petrel's configuration: the embedded defaults, overridden by a TOML file. The key names are the
/// public interface documented in README.md.
public struct PetrelConfiguration: Sendable, Equatable {
    public struct Inbound: Sendable, Equatable {
        public var listen: [ListenAddress] = [ListenAddress("127.0.0.1:2525")!]
        public var maxMessageSize = 25 * 1024 * 1024
        public var maxRecipients = 100
        public var maxConnections = 1000
        public var maxConnectionsPerClient = 50
        /// RFC 5321 §4.5.3.2.7: at least five minutes.
        public var commandTimeout: Duration = .seconds(300)
        /// RFC 5321 §4.5.3.2.6: ten minutes for the end of data.
        public var dataTimeout: Duration = .seconds(600)
        public var maxReceivedHeaders = 100
        public var bareLineEndings: DataDecoder.LineEndingPolicy = .reject
        /// RFC 6409 submission listeners: STARTTLS, then AUTH, before MAIL. Empty: none.
        public var submissionListen: [ListenAddress] = []
        /// RFC 8314 implicit-TLS submission listeners. Empty: none.
        public var submissionsListen: [ListenAddress] = []
    }

    public struct TLS: Sendable, Equatable {
        /// PEM certificate chain; with `key`, STARTTLS is offered.
        public var certificate: String?
        public var key: String?
    }

    public struct Auth: Sendable, Equatable {
        public var usersFile = "petrel-data/users"
    }

    /// How the client uses TLS toward a next hop.
    public enum TLSPolicy: String, Sendable, Equatable {
        case none
        /// RFC 7435: encrypt when offered, without checking the certificate.
        case opportunistic
        /// Never send in plaintext; verify the certificate against the system trust store.
        case required
    }

    public struct Metrics: Sendable, Equatable {
        /// `ip:port` for `/metrics` and `/healthz`; `nil`: no metrics listener.
        public var listen: ListenAddress?
    }

    public struct Log: Sendable, Equatable {
        public enum Format: String, Sendable, Equatable { case human, json }
        public var format = Format.human
    }

    public struct Access: Sendable, Equatable {
        /// Empty: anyone may connect.
        public var clientNetworks = NetworkList([])
        public var relayNetworks = NetworkList([CIDRBlock("127.0.0.0/8")!, CIDRBlock("::1/128")!])
        public var relayDomains: [String] = []
    }

    public struct Queue: Sendable, Equatable {
        public var path = "petrel-data/queue.sqlite"
    }

    public struct Delivery: Sendable, Equatable {
        public var workers = 64
        public var maxConnectionsPerDomain = 20
        public var maxRecipientsPerTransaction = 50
        /// `ip` or `ip:port` (`HostPort(nameServer:)`); empty means the system's /etc/resolv.conf.
        public var dnsServers: [String] = []
        public var mxPort = 25
        public var smarthost: HostPort?
        public var retryMin: Duration = .seconds(300)
        public var retryMax: Duration = .seconds(3600)
        /// RFC 5321 §4.5.4.1 suggests at least four or five days.
        public var maxQueueLifetime: Duration = .seconds(5 * 86400)
        /// `.zero` turns the delay warning off.
        public var delayWarning: Duration = .seconds(4 * 3600)
        public var connectTimeout: Duration = .seconds(30)
        /// RFC 5321 §4.5.3.2: five minutes for the greeting, MAIL and RCPT.
        public var commandTimeout: Duration = .seconds(300)
        /// RFC 5321 §4.5.3.2.6: ten minutes for the reply to the end of data.
        public var dataTimeout: Duration = .seconds(600)
        public var tls = TLSPolicy.opportunistic
        /// `nil`: `required` when `smarthostUser` is set, else `opportunistic`.
        public var smarthostTLS: TLSPolicy?
        public var smarthostUser: String?
        public var smarthostPasswordFile: String?
        /// PEM CA certificates that verify a next hop's certificate under `required` TLS, instead of the
        /// system trust store (a private CA); `nil`: the system's.
        public var tlsCAFile: String?

        /// The policy toward the smarthost: credentials never travel in plaintext.
        public var effectiveSmarthostTLS: TLSPolicy { smarthostTLS ?? (smarthostUser != nil ? .required : .opportunistic) }
    }

    public var hostname: String = PetrelConfiguration.systemHostname()
    public var inbound = Inbound()
    public var access = Access()
    public var queue = Queue()
    public var delivery = Delivery()
    public var tls = TLS()
    public var auth = Auth()
    public var metrics = Metrics()
    public var log = Log()
    /// Per-domain next hops, ahead of the smarthost and MX: lowercased domain → host:port.
    public var routes: [String: HostPort] = [:]
    /// The file this came from, or `nil` for the embedded defaults.
    public var sourceFile: String?

    public init() {}

    /// The embedded defaults, as documented (relative paths are still relative).
    public static var defaults: PetrelConfiguration { PetrelConfiguration() }

    /// Loads a configuration file. Relative paths in it resolve against its folder, and become absolute.
    public static func load(file: String) throws -> PetrelConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigurationError(file: file, key: "", message: "cannot read the file (\(error.localizedDescription))")
        }
        var configuration = try parse(toml: text, file: file)
        let folder = (file as NSString).deletingLastPathComponent
        configuration.resolvePaths(against: folder.isEmpty ? "." : folder)
        configuration.sourceFile = file
        return configuration
    }

    /// Loads `file`, or the defaults when it is `nil`, their paths resolved against the working directory.
    public static func load(file: String?) throws -> PetrelConfiguration {
        if let file { return try load(file: file) }
        var configuration = defaults
        configuration.resolvePaths(against: ".")
        return configuration
    }

    /// Makes every path absolute: a relative one is taken from `folder`, itself taken from the working
    /// directory when relative. (`config check --print` shows the files the relay will use.)
    mutating func resolvePaths(against folder: String) {
        let base = Self.resolve(folder, against: FileManager.default.currentDirectoryPath)
        queue.path = Self.resolve(queue.path, against: base)
        auth.usersFile = Self.resolve(auth.usersFile, against: base)
        tls.certificate = tls.certificate.map { Self.resolve($0, against: base) }
        tls.key = tls.key.map { Self.resolve($0, against: base) }
        delivery.smarthostPasswordFile = delivery.smarthostPasswordFile.map { Self.resolve($0, against: base) }
        delivery.tlsCAFile = delivery.tlsCAFile.map { Self.resolve($0, against: base) }
    }

    /// `path` if absolute, else `folder/path`, with `.` and `..` taken out.
    static func resolve(_ path: String, against folder: String) -> String {
        let joined = path.hasPrefix("/") ? path : (folder as NSString).appendingPathComponent(path)
        return URL(fileURLWithPath: joined).standardized.path
    }

    public static func systemHostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        let name = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return name.isEmpty ? "localhost" : name
    }
}
