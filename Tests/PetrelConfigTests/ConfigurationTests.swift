import Foundation
import Testing
@testable import PetrelConfig

/// The configuration file: every documented key, the value formats, and errors that name the key and file.
struct ConfigurationTests {
    @Test func defaultsMatchTheDocumentation() {
        let configuration = PetrelConfiguration.defaults
        #expect(configuration.inbound.listen == [ListenAddress("127.0.0.1:2525")!])
        #expect(configuration.inbound.maxMessageSize == 25 * 1024 * 1024)
        #expect(configuration.inbound.maxRecipients == 100)
        #expect(configuration.inbound.maxConnections == 1000)
        #expect(configuration.inbound.maxConnectionsPerClient == 50)
        #expect(configuration.inbound.commandTimeout == .seconds(300))
        #expect(configuration.inbound.dataTimeout == .seconds(600))
        #expect(configuration.inbound.maxReceivedHeaders == 100)
        #expect(configuration.inbound.bareLineEndings == .reject)
        #expect(configuration.access.clientNetworks.blocks.isEmpty)
        #expect(configuration.access.relayNetworks.blocks.map(\.description) == ["127.0.0.0/8", "::1/128"])
        #expect(configuration.queue.path == "petrel-data/queue.sqlite")
        #expect(!configuration.hostname.isEmpty)
    }

    @Test func readsEveryKey() throws {
        let text = """
        hostname = "relay.example.net"
        [inbound]
        listen = ["127.0.0.1:2525", "[::1]:2526"]
        max_message_size = "10MB"
        max_recipients = 50
        max_connections = 10
        max_connections_per_client = 2
        command_timeout = "30s"
        data_timeout = "4h"
        max_received_headers = 30
        bare_line_endings = "normalize"
        [access]
        client_networks = ["192.0.2.0/24"]
        relay_networks = ["10.0.0.0/8", "2001:db8::/32"]
        relay_domains = ["Example.ORG"]
        [queue]
        path = "/var/spool/petrel/queue.sqlite"
        [delivery]
        workers = 8
        max_connections_per_domain = 4
        max_recipients_per_transaction = 10
        dns_servers = ["127.0.0.1:5353", "192.0.2.53"]
        mx_port = 2526
        smarthost = "smtp.example.net:587"
        retry_min = "1m"
        retry_max = "2h"
        max_queue_lifetime = "3d"
        delay_warning = "0"
        connect_timeout = "10s"
        command_timeout = "2m"
        data_timeout = "5m"
        [routes]
        "internal.example" = "10.0.0.5:25"
        "Other.Example" = "[2001:db8::25]:2525"
        "named.example" = "mail.named.example"
        """
        let configuration = try PetrelConfiguration.parse(toml: text, file: "test.toml")
        #expect(configuration.hostname == "relay.example.net")
        #expect(configuration.inbound.listen.map(\.description) == ["127.0.0.1:2525", "[::1]:2526"])
        #expect(configuration.inbound.maxMessageSize == 10 * 1024 * 1024)
        #expect(configuration.inbound.maxRecipients == 50)
        #expect(configuration.inbound.maxConnections == 10)
        #expect(configuration.inbound.maxConnectionsPerClient == 2)
        #expect(configuration.inbound.commandTimeout == .seconds(30))
        #expect(configuration.inbound.dataTimeout == .seconds(4 * 3600))
        #expect(configuration.inbound.maxReceivedHeaders == 30)
        #expect(configuration.inbound.bareLineEndings == .normalize)
        #expect(configuration.access.clientNetworks.contains(IPAddress("192.0.2.77")!))
        #expect(!configuration.access.clientNetworks.contains(IPAddress("192.0.3.1")!))
        #expect(configuration.access.relayNetworks.contains(IPAddress("10.1.2.3")!))
        #expect(configuration.access.relayNetworks.contains(IPAddress("2001:db8:1::5")!))
        #expect(configuration.access.relayDomains == ["example.org"])
        #expect(configuration.queue.path == "/var/spool/petrel/queue.sqlite")
        #expect(configuration.delivery.workers == 8)
        #expect(configuration.delivery.maxConnectionsPerDomain == 4)
        #expect(configuration.delivery.maxRecipientsPerTransaction == 10)
        #expect(configuration.delivery.dnsServers == ["127.0.0.1:5353", "192.0.2.53"])
        #expect(configuration.delivery.mxPort == 2526)
        #expect(configuration.delivery.smarthost == PetrelConfiguration.HostPort(host: "smtp.example.net", port: 587))
        #expect(configuration.delivery.retryMin == .seconds(60))
        #expect(configuration.delivery.retryMax == .seconds(7200))
        #expect(configuration.delivery.maxQueueLifetime == .seconds(3 * 86400))
        #expect(configuration.delivery.delayWarning == .zero)
        #expect(configuration.delivery.connectTimeout == .seconds(10))
        #expect(configuration.delivery.commandTimeout == .seconds(120))
        #expect(configuration.delivery.dataTimeout == .seconds(300))
        #expect(configuration.routes == [
            "internal.example": PetrelConfiguration.HostPort(host: "10.0.0.5", port: 25),
            "other.example": PetrelConfiguration.HostPort(host: "2001:db8::25", port: 2525),
            "named.example": PetrelConfiguration.HostPort(host: "mail.named.example", port: 25),
        ])
    }

    static let errors: [(String, String)] = [
        ("bogus = 1", "f.toml: bogus: unknown key"),
        ("[inbound]\nbogus = 1", "f.toml: inbound.bogus: unknown key"),
        ("[nowhere]\nx = 1", "f.toml: nowhere: unknown key"),
        ("[inbound]\nmax_recipients = 0", "f.toml: inbound.max_recipients: expected a positive integer, got 0"),
        ("[inbound]\nmax_recipients = \"many\"", "f.toml: inbound.max_recipients: expected a positive integer, got \"many\""),
        ("[inbound]\nmax_message_size = \"25GB\"", "f.toml: inbound.max_message_size: expected a size such as \"25MB\", \"512KB\" or 1000, got \"25GB\""),
        ("[inbound]\ncommand_timeout = \"5 minutes\"", "f.toml: inbound.command_timeout: expected a duration such as \"30s\", \"5m\", \"4h\" or \"5d\", got \"5 minutes\""),
        ("[inbound]\nlisten = [\"localhost:25\"]", "f.toml: inbound.listen: invalid value [\"localhost:25\"]"),
        ("[inbound]\nlisten = [\"::1:25\"]", "f.toml: inbound.listen: invalid value [\"::1:25\"]"),
        ("[inbound]\nbare_line_endings = \"accept\"", "f.toml: inbound.bare_line_endings: invalid value \"accept\""),
        ("[access]\nrelay_networks = [\"10.0.0.0/33\"]", "f.toml: access.relay_networks: invalid value [\"10.0.0.0/33\"]"),
        ("[access]\nclient_networks = [\"10.0.0/8\"]", "f.toml: access.client_networks: invalid value [\"10.0.0/8\"]"),
        ("[access]\nrelay_networks = \"10.0.0.0/8\"", "f.toml: access.relay_networks: expected an array of strings, got string"),
        ("[delivery]\nsmarthost = \"mail example:25\"", "f.toml: delivery.smarthost: invalid value \"mail example:25\""),
        ("[delivery]\ndns_servers = [\"dns.example\"]", "f.toml: delivery.dns_servers: invalid value [\"dns.example\"]"),
        ("[delivery]\nretry_min = \"2h\"\nretry_max = \"1h\"", "f.toml: delivery.retry_max: must not be shorter than retry_min"),
        ("[routes]\n\"a.example\" = \"host:99999\"", "f.toml: routes.a.example: expected \"host:port\", got \"host:99999\""),
        ("[queue]\nmax_queue_lifetime = \"5d\"", "f.toml: queue.max_queue_lifetime: unknown key"),
    ]

    @Test(arguments: errors)
    func namesTheKeyAndTheFile(text: String, expected: String) {
        do {
            _ = try PetrelConfiguration.parse(toml: text, file: "f.toml")
            Issue.record("accepted \(text.debugDescription)")
        } catch let error as ConfigurationError {
            #expect(error.description == expected)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func reportsTOMLSyntaxErrorsWithTheFile() {
        #expect(throws: ConfigurationError.self) { try PetrelConfiguration.parse(toml: "[inbound\n", file: "f.toml") }
    }

    @Test func resolvesRelativePathsAgainstTheFilesFolder() throws {
        let folder = NSTemporaryDirectory() + "petrel-config-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/petrel.toml"
        try "[queue]\npath = \"data/q.sqlite\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try PetrelConfiguration.load(file: file)
        #expect(configuration.queue.path == folder + "/data/q.sqlite")
        #expect(configuration.sourceFile == file)
    }

    @Test func pathsBecomeAbsoluteSoThatPrintShowsTheFilesInUse() throws {
        let defaults = try PetrelConfiguration.load(file: nil)
        let here = FileManager.default.currentDirectoryPath
        #expect(defaults.queue.path == here + "/petrel-data/queue.sqlite")
        #expect(defaults.auth.usersFile == here + "/petrel-data/users")
        #expect(defaults.renderTOML().contains("path = \"\(here)/petrel-data/queue.sqlite\""))

        let folder = NSTemporaryDirectory() + "petrel-config-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder + "/etc", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "[delivery]\ntls_ca_file = \"../ca/./private.pem\"\n".write(toFile: folder + "/etc/petrel.toml", atomically: true, encoding: .utf8)
        let configuration = try PetrelConfiguration.load(file: folder + "/etc/../etc/petrel.toml")
        #expect(configuration.delivery.tlsCAFile == folder + "/ca/private.pem")
        #expect(configuration.queue.path == folder + "/etc/petrel-data/queue.sqlite")
    }

    @Test func withoutConfigTheEnvironmentThenTheSystemFileThenTheDefaults() {
        #expect(ConfigurationSource.locate(option: "a.toml", environment: ["PETREL_CONFIG": "b.toml"], fileExists: { _ in true }) == .option("a.toml"))
        #expect(ConfigurationSource.locate(option: nil, environment: ["PETREL_CONFIG": "b.toml"], fileExists: { _ in true }) == .environment("b.toml"))
        #expect(ConfigurationSource.locate(option: nil, environment: ["PETREL_CONFIG": ""], fileExists: { $0 == "/etc/petrel/petrel.toml" })
                == .system("/etc/petrel/petrel.toml"))
        let none = ConfigurationSource.locate(option: nil, environment: [:], fileExists: { _ in false })
        #expect(none == .defaults)
        #expect(none.file == nil)
        #expect(none.description == "the embedded defaults (no --config, no $PETREL_CONFIG, no /etc/petrel/petrel.toml)")
    }

    @Test func aListenerThatCannotBindSaysWhereAndWhy() {
        let error = ListenError(address: ListenAddress("127.0.0.1:2525")!, key: "inbound.listen", errno: EADDRINUSE)
        #expect(error.description == "cannot listen on 127.0.0.1:2525 (inbound.listen): address already in use")
    }

    @Test func readsTLSAuthMetricsAndLogKeys() throws {
        let text = """
        [inbound]
        submission_listen = ["127.0.0.1:2587"]
        submissions_listen = ["[::1]:2465"]
        [tls]
        certificate = "/etc/petrel/tls/fullchain.pem"
        key = "/etc/petrel/tls/privkey.pem"
        [auth]
        users_file = "/etc/petrel/users"
        [delivery]
        tls = "required"
        smarthost_user = "relay"
        smarthost_password_file = "/etc/petrel/smarthost.password"
        tls_ca_file = "/etc/petrel/private-ca.pem"
        [metrics]
        listen = "127.0.0.1:9025"
        [log]
        format = "json"
        """
        let configuration = try PetrelConfiguration.parse(toml: text, file: "f.toml")
        #expect(configuration.inbound.submissionListen.map(\.description) == ["127.0.0.1:2587"])
        #expect(configuration.inbound.submissionsListen.map(\.description) == ["[::1]:2465"])
        #expect(configuration.tls.certificate != nil && configuration.tls.key != nil)
        #expect(configuration.auth.usersFile == "/etc/petrel/users")
        #expect(configuration.delivery.tls == .required)
        #expect(configuration.delivery.smarthostTLS == nil)
        // Credentials never travel in plaintext: required is the default once a user is set.
        #expect(configuration.delivery.effectiveSmarthostTLS == .required)
        #expect(configuration.delivery.smarthostPasswordFile == "/etc/petrel/smarthost.password")
        #expect(configuration.delivery.tlsCAFile == "/etc/petrel/private-ca.pem")
        #expect(configuration.metrics.listen?.description == "127.0.0.1:9025")
        #expect(configuration.log.format == .json)
        #expect(PetrelConfiguration().delivery.effectiveSmarthostTLS == .opportunistic)
        #expect(throws: ConfigurationError.self) { try PetrelConfiguration.parse(toml: "[tls]\ncertificate = \"a.pem\"", file: "f.toml") }
        #expect(throws: ConfigurationError.self) { try PetrelConfiguration.parse(toml: "[delivery]\ntls = \"maybe\"", file: "f.toml") }
    }

    @Test func printsTheEffectiveConfigurationSoThatItParsesBack() throws {
        var configuration = try PetrelConfiguration.parse(toml: """
            [delivery]
            smarthost = "smtp.example.net:587"
            tls_ca_file = "/etc/petrel/private-ca.pem"
            [routes]
            "a.example" = "10.0.0.5:25"
            [access]
            relay_domains = ["ours.example"]
            """, file: "f.toml")
        configuration.sourceFile = nil
        var again = try PetrelConfiguration.parse(toml: configuration.renderTOML(), file: "printed.toml")
        again.sourceFile = nil
        // smarthost_tls is printed resolved; everything else must come back identical.
        again.delivery.smarthostTLS = configuration.delivery.smarthostTLS
        #expect(again == configuration)
        #expect(PetrelConfiguration().renderTOML().contains("max_connections_per_client = 50"))
    }

    static let durations: [(String, Duration?)] = [("30s", .seconds(30)), ("5m", .seconds(300)), ("4h", .seconds(14400)), ("5d", .seconds(432000)), ("0", .zero), ("5", nil), ("m", nil), ("-5m", nil), ("5w", nil)]

    @Test(arguments: durations)
    func parsesDurations(text: String, expected: Duration?) {
        #expect(ValueFormats.parseDuration(text) == expected)
    }

    static let sizes: [(String, Int?)] = [("1000", 1000), ("512KB", 524288), ("25MB", 26214400), ("MB", nil), ("1.5MB", nil), ("10GB", nil)]

    @Test(arguments: sizes)
    func parsesSizes(text: String, expected: Int?) {
        #expect(ValueFormats.parseSize(text) == expected)
    }

    @Test func matchesNetworks() {
        let block = CIDRBlock("192.0.2.128/25")!
        #expect(block.contains(IPAddress("192.0.2.200")!))
        #expect(!block.contains(IPAddress("192.0.2.1")!))
        #expect(CIDRBlock("0.0.0.0/0")!.contains(IPAddress("203.0.113.5")!))
        #expect(CIDRBlock("127.0.0.1")!.contains(IPAddress("127.0.0.1")!))
        #expect(!CIDRBlock("127.0.0.1")!.contains(IPAddress("127.0.0.2")!))
        // An IPv4-mapped IPv6 client matches IPv4 networks.
        #expect(CIDRBlock("127.0.0.0/8")!.contains(IPAddress("::ffff:127.0.0.2")!))
        #expect(!CIDRBlock("::1/128")!.contains(IPAddress("127.0.0.1")!))
        #expect(CIDRBlock("2001:db8::/129") == nil)
    }
}
