import SMTPProtocol
import TOMLKit

extension PetrelConfiguration {
    /// Parses TOML text over the defaults. Every key must be known and every value valid; the error
    /// names the file and the key.
    public static func parse(toml text: String, file: String) throws -> PetrelConfiguration {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(file: file, key: "", message: "TOML syntax error at \(error.source.begin): \(error.description)")
        }
        var configuration = PetrelConfiguration()
        var reader = TableReader(table: root, path: "", file: file)
        try reader.string("hostname") { value in
            guard !value.isEmpty, !value.contains(" ") else { return nil }
            configuration.hostname = value
            return ()
        }
        try reader.table("inbound") { inbound in
            try inbound.list("listen") { values in
                let addresses = values.compactMap(ListenAddress.init)
                guard addresses.count == values.count, !addresses.isEmpty else { return nil }
                configuration.inbound.listen = addresses
                return ()
            }
            try inbound.size("max_message_size") { configuration.inbound.maxMessageSize = $0 }
            try inbound.positiveInteger("max_recipients") { configuration.inbound.maxRecipients = $0 }
            try inbound.positiveInteger("max_connections") { configuration.inbound.maxConnections = $0 }
            try inbound.positiveInteger("max_connections_per_client") { configuration.inbound.maxConnectionsPerClient = $0 }
            try inbound.duration("command_timeout", allowZero: false) { configuration.inbound.commandTimeout = $0 }
            try inbound.duration("data_timeout", allowZero: false) { configuration.inbound.dataTimeout = $0 }
            try inbound.positiveInteger("max_received_headers") { configuration.inbound.maxReceivedHeaders = $0 }
            try inbound.string("bare_line_endings") { value in
                guard let policy = DataDecoder.LineEndingPolicy(rawValue: value) else { return nil }
                configuration.inbound.bareLineEndings = policy
                return ()
            }
            try inbound.list("submission_listen") { values in
                let addresses = values.compactMap(ListenAddress.init)
                guard addresses.count == values.count else { return nil }
                configuration.inbound.submissionListen = addresses
                return ()
            }
            try inbound.list("submissions_listen") { values in
                let addresses = values.compactMap(ListenAddress.init)
                guard addresses.count == values.count else { return nil }
                configuration.inbound.submissionsListen = addresses
                return ()
            }
        }
        try reader.table("access") { access in
            try access.list("client_networks") { values in
                guard let list = networks(values) else { return nil }
                configuration.access.clientNetworks = list
                return ()
            }
            try access.list("relay_networks") { values in
                guard let list = networks(values) else { return nil }
                configuration.access.relayNetworks = list
                return ()
            }
            try access.list("relay_domains") { values in
                guard values.allSatisfy({ !$0.isEmpty && !$0.contains("@") && !$0.contains(" ") }) else { return nil }
                configuration.access.relayDomains = values.map { $0.lowercased() }
                return ()
            }
        }
        try reader.table("queue") { queue in
            try queue.string("path") { value in
                guard !value.isEmpty else { return nil }
                configuration.queue.path = value
                return ()
            }
        }
        try reader.table("delivery") { delivery in
            try delivery.positiveInteger("workers") { configuration.delivery.workers = $0 }
            try delivery.positiveInteger("max_connections_per_domain") { configuration.delivery.maxConnectionsPerDomain = $0 }
            try delivery.positiveInteger("max_recipients_per_transaction") { configuration.delivery.maxRecipientsPerTransaction = $0 }
            try delivery.list("dns_servers") { values in
                guard values.allSatisfy({ HostPort($0, defaultPort: 53).map { IPAddress($0.host) != nil } ?? false }) else { return nil }
                configuration.delivery.dnsServers = values
                return ()
            }
            try delivery.positiveInteger("mx_port") { port in configuration.delivery.mxPort = min(port, 65535) }
            try delivery.string("smarthost") { value in
                if value.isEmpty {
                    configuration.delivery.smarthost = nil
                    return ()
                }
                guard let hop = HostPort(value, defaultPort: 25) else { return nil }
                configuration.delivery.smarthost = hop
                return ()
            }
            try delivery.duration("retry_min", allowZero: false) { configuration.delivery.retryMin = $0 }
            try delivery.duration("retry_max", allowZero: false) { configuration.delivery.retryMax = $0 }
            try delivery.duration("max_queue_lifetime", allowZero: false) { configuration.delivery.maxQueueLifetime = $0 }
            try delivery.duration("delay_warning", allowZero: true) { configuration.delivery.delayWarning = $0 }
            try delivery.duration("connect_timeout", allowZero: false) { configuration.delivery.connectTimeout = $0 }
            try delivery.duration("command_timeout", allowZero: false) { configuration.delivery.commandTimeout = $0 }
            try delivery.duration("data_timeout", allowZero: false) { configuration.delivery.dataTimeout = $0 }
            try delivery.string("tls") { value in
                guard let policy = TLSPolicy(rawValue: value) else { return nil }
                configuration.delivery.tls = policy
                return ()
            }
            try delivery.string("smarthost_tls") { value in
                guard let policy = TLSPolicy(rawValue: value) else { return nil }
                configuration.delivery.smarthostTLS = policy
                return ()
            }
            try delivery.string("smarthost_user") { value in
                configuration.delivery.smarthostUser = value.isEmpty ? nil : value
                return ()
            }
            try delivery.string("smarthost_password_file") { value in
                configuration.delivery.smarthostPasswordFile = value.isEmpty ? nil : value
                return ()
            }
            try delivery.string("tls_ca_file") { value in
                configuration.delivery.tlsCAFile = value.isEmpty ? nil : value
                return ()
            }
            if configuration.delivery.retryMax < configuration.delivery.retryMin {
                throw delivery.error("retry_max", "must not be shorter than retry_min")
            }
        }
        try reader.table("tls") { tls in
            try tls.string("certificate") { value in
                configuration.tls.certificate = value.isEmpty ? nil : value
                return ()
            }
            try tls.string("key") { value in
                configuration.tls.key = value.isEmpty ? nil : value
                return ()
            }
            if (configuration.tls.certificate == nil) != (configuration.tls.key == nil) {
                throw tls.error(configuration.tls.certificate == nil ? "certificate" : "key", "certificate and key must be given together")
            }
        }
        try reader.table("auth") { auth in
            try auth.string("users_file") { value in
                guard !value.isEmpty else { return nil }
                configuration.auth.usersFile = value
                return ()
            }
        }
        try reader.table("metrics") { metrics in
            try metrics.string("listen") { value in
                if value.isEmpty {
                    configuration.metrics.listen = nil
                    return ()
                }
                guard let address = ListenAddress(value) else { return nil }
                configuration.metrics.listen = address
                return ()
            }
        }
        try reader.table("log") { log in
            try log.string("format") { value in
                guard let format = Log.Format(rawValue: value) else { return nil }
                configuration.log.format = format
                return ()
            }
        }
        try reader.anyTable("routes") { key, value in
            let domain = key.lowercased()
            guard !domain.isEmpty, !domain.contains("@"), let text = value.string, let hop = HostPort(text, defaultPort: 25) else {
                return false
            }
            configuration.routes[domain] = hop
            return true
        }
        try reader.finish()
        return configuration
    }

    private static func networks(_ values: [String]) -> NetworkList? {
        let blocks = values.compactMap(CIDRBlock.init)
        return blocks.count == values.count ? NetworkList(blocks) : nil
    }
}

/// Reads one TOML table, remembering which keys were used so that an unknown key is reported.
struct TableReader {
    let table: TOMLTable
    let path: String
    let file: String
    private var used: Set<String> = []

    init(table: TOMLTable, path: String, file: String) {
        self.table = table
        self.path = path
        self.file = file
    }

    func error(_ key: String, _ message: String) -> ConfigurationError {
        ConfigurationError(file: file, key: path.isEmpty ? key : "\(path).\(key)", message: message)
    }

    /// Reads a string; `apply` returns `nil` when the value is not acceptable.
    mutating func string(_ key: String, expected: String = "a valid value", _ apply: (String) throws -> Void?) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let text = value.string else { throw error(key, "expected a string, got \(value.type)") }
        guard try apply(text) != nil else { throw error(key, "invalid value \"\(text)\"") }
    }

    mutating func list(_ key: String, _ apply: ([String]) throws -> Void?) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let array = value.array else { throw error(key, "expected an array of strings, got \(value.type)") }
        var strings: [String] = []
        for element in array {
            guard let text = element.string else { throw error(key, "expected an array of strings") }
            strings.append(text)
        }
        guard try apply(strings) != nil else {
            throw error(key, "invalid value [\(strings.map { "\"\($0)\"" }.joined(separator: ", "))]")
        }
    }

    mutating func positiveInteger(_ key: String, _ apply: (Int) -> Void) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let number = value.int, number > 0 else { throw error(key, "expected a positive integer, got \(value.debugDescription)") }
        apply(number)
    }

    mutating func size(_ key: String, _ apply: (Int) -> Void) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        if let number = value.int, number > 0 { return apply(number) }
        guard let text = value.string, let size = ValueFormats.parseSize(text), size > 0 else {
            throw error(key, "expected a size such as \"25MB\", \"512KB\" or 1000, got \(value.debugDescription)")
        }
        apply(size)
    }

    mutating func duration(_ key: String, allowZero: Bool, _ apply: (Duration) -> Void) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let text = value.string, let duration = ValueFormats.parseDuration(text), allowZero || duration > .zero else {
            throw error(key, "expected a duration such as \"30s\", \"5m\", \"4h\" or \"5d\", got \(value.debugDescription)")
        }
        apply(duration)
    }

    mutating func table(_ key: String, _ read: (inout TableReader) throws -> Void) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let subtable = value.table else { throw error(key, "expected a table ([\(key)])") }
        var reader = TableReader(table: subtable, path: path.isEmpty ? key : "\(path).\(key)", file: file)
        try read(&reader)
        try reader.finish()
    }

    /// A table whose keys are names the operator chooses (such as domains in `[routes]`); `read` returns
    /// `false` for an entry it refuses.
    mutating func anyTable(_ key: String, _ read: (String, any TOMLValueConvertible) throws -> Bool) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let subtable = value.table else { throw error(key, "expected a table ([\(key)])") }
        for name in subtable.keys.sorted() {
            guard let entry = subtable[name], try read(name, entry) else {
                throw ConfigurationError(file: file, key: "\(key).\(name)", message: "expected \"host:port\", got \(subtable[name]?.debugDescription ?? "nothing")")
            }
        }
    }

    /// Fails on the first key that was never asked for.
    func finish() throws {
        for key in table.keys.sorted() where !used.contains(key) {
            throw error(key, "unknown key")
        }
    }
}
