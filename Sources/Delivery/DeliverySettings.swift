import NIOSSL
import PetrelConfig
import SMTPProtocol

/// The part of the configuration the delivery engine uses.
public struct DeliverySettings: Sendable {
    public var hostname: String
    public var workers: Int
    public var maximumConnectionsPerDomain: Int
    public var maximumRecipientsPerTransaction: Int
    public var retry: RetrySchedule
    public var maximumQueueLifetime: Duration
    /// `.zero`: no delay warnings.
    public var delayWarning: Duration
    public var timeouts: ClientTimeouts
    public var routes: [String: PetrelConfiguration.HostPort]
    public var smarthost: PetrelConfiguration.HostPort?
    public var mxPort: Int
    public var tls: PetrelConfiguration.TLSPolicy
    public var smarthostTLS: PetrelConfiguration.TLSPolicy
    /// The smarthost's AUTH credentials, the password read from `smarthost_password_file`.
    public var smarthostCredentials: ClientSession.Security.Credentials?
    /// A CA file to trust instead of the system store when verifying (`delivery.tls_ca_file`); `nil`: the system's.
    public var trustRoots: String?
    /// The client TLS contexts, made by ``loadTLS(_:)``: without them STARTTLS is never tried, and under
    /// `required` every delivery waits.
    public var opportunisticTLS: ClientTLS?
    public var verifiedTLS: ClientTLS?
    /// How long a claimed recipient stays leased: a crashed worker's recipients fall due again after it.
    public var lease: Duration = .seconds(15 * 60)
    /// The longest the scheduler sleeps before it looks at the queue again. The operator's `petrel queue
    /// retry|release` writes from another process, which cannot ring the scheduler: it is seen within this.
    /// A look at an idle queue is one empty claim (no write, no fsync) and one indexed read.
    public var idlePoll: Duration = .seconds(1)

    public init(_ configuration: PetrelConfiguration) {
        let delivery = configuration.delivery
        hostname = configuration.hostname
        workers = delivery.workers
        maximumConnectionsPerDomain = delivery.maxConnectionsPerDomain
        maximumRecipientsPerTransaction = delivery.maxRecipientsPerTransaction
        retry = RetrySchedule(minimum: delivery.retryMin, maximum: delivery.retryMax)
        maximumQueueLifetime = delivery.maxQueueLifetime
        delayWarning = delivery.delayWarning
        timeouts = ClientTimeouts(
            connect: delivery.connectTimeout,
            command: delivery.commandTimeout,
            dataInitiation: min(delivery.commandTimeout, .seconds(120)),
            dataTermination: delivery.dataTimeout
        )
        routes = configuration.routes
        smarthost = configuration.delivery.smarthost
        mxPort = delivery.mxPort
        tls = delivery.tls
        smarthostTLS = delivery.effectiveSmarthostTLS
        smarthostCredentials = nil
        trustRoots = delivery.tlsCAFile
    }

    /// Makes the client TLS contexts. One that cannot be made stops start-up, `config check` and a reload,
    /// naming the key and the file, rather than deferring every delivery that needs it until it expires.
    public mutating func loadTLS(_ configuration: PetrelConfiguration) throws {
        do {
            opportunisticTLS = try ClientTLS.opportunistic()
        } catch {
            throw SettingsError(description: "delivery.tls: cannot make a TLS client context: \(error)")
        }
        let delivery = configuration.delivery
        let verifies = delivery.tls == .required || delivery.effectiveSmarthostTLS == .required
        guard verifies || trustRoots != nil else { return }
        do {
            verifiedTLS = try ClientTLS.verified(trustRoots: trustRoots)
        } catch {
            if let trustRoots {
                throw SettingsError(description: "delivery.tls_ca_file: cannot load \(trustRoots): \(Self.describe(error))")
            }
            let key = delivery.tls == .required ? "delivery.tls" : "delivery.smarthost_tls"
            throw SettingsError(description: "\(key): \"required\" verifies certificates against the system trust store, "
                                + "which cannot be loaded (install ca-certificates, or set delivery.tls_ca_file): \(error)")
        }
    }

    private static func describe(_ error: any Error) -> String {
        if case NIOSSLError.noSuchFilesystemObject = error { return "no such file" }
        return "not PEM CA certificates (\(error))"
    }

    /// Reads the smarthost password file (its first line) when a smarthost user is configured.
    public mutating func loadSmarthostCredentials(_ configuration: PetrelConfiguration) throws {
        guard let user = configuration.delivery.smarthostUser else { return }
        guard let file = configuration.delivery.smarthostPasswordFile else {
            throw SettingsError(description: "delivery.smarthost_password_file: required when smarthost_user is set")
        }
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw SettingsError(description: "delivery.smarthost_password_file: cannot read \(file)")
        }
        let password = String(text.prefix { $0 != "\n" && $0 != "\r" })
        smarthostCredentials = .init(user: user, password: password)
    }
}

public struct SettingsError: Error, CustomStringConvertible {
    public var description: String
}
