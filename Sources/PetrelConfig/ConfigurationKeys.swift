import SMTPProtocol
import TOMLKit

/// Every key of the configuration file, declared once: its name, how it is read and validated, how
/// `config check --print` writes it back, and its line in the README's reference
/// (`PetrelConfiguration.reference`, which a test compares with README.md).
struct ConfigurationSection {
    /// The table's name; empty for the top level.
    let name: String
    let doc: String
    let keys: [ConfigurationKey]
    /// A table whose keys the operator names (the domains of `[routes]`).
    var entries: NamedEntries?
    /// A rule across the section's keys, checked after they are read.
    var check: (TableReader, PetrelConfiguration) throws -> Void = { _, _ in }

    /// The keys, in the order the file is read, printed and documented.
    static var all: [ConfigurationSection] {
        [top, inbound, access, queue, delivery, routes, tls, auth, metrics, log]
    }
}

/// One key: `read` applies the value when the key is present (and throws the error naming file and key),
/// `render` gives the value as TOML text.
struct ConfigurationKey {
    let name: String
    let doc: String
    let read: (inout TableReader, inout PetrelConfiguration) throws -> Void
    let render: (PetrelConfiguration) -> String
    /// What the reference shows instead of the default (the host name, which is the machine's).
    var example: String?
}

/// The entries of a table whose keys the operator chooses.
struct NamedEntries {
    /// Applies one entry; `false` refuses it.
    let read: (String, any TOMLValueConvertible, inout PetrelConfiguration) -> Bool
    /// The entries as `(key, value)` TOML texts.
    let render: (PetrelConfiguration) -> [(String, String)]
    /// A commented example line for the reference.
    let example: String
}

extension ConfigurationSection {
    static var top: ConfigurationSection {
        ConfigurationSection(name: "", doc: "", keys: [
            .string("hostname", \.hostname, example: "relay.example.net", "default: the machine's host name") { value in
                value.isEmpty || value.contains(" ") ? nil : value
            },
        ])
    }

    static var inbound: ConfigurationSection {
        ConfigurationSection(name: "inbound", doc: "", keys: [
            .listenAddresses("listen", \.inbound.listen, allowsEmpty: false, "relay listener(s); IPv4 and IPv6"),
            .listenAddresses("submission_listen", \.inbound.submissionListen, allowsEmpty: true,
                             "RFC 6409 submission (e.g. [\"0.0.0.0:587\"]): STARTTLS, then AUTH before MAIL; client_networks does not apply"),
            .listenAddresses("submissions_listen", \.inbound.submissionsListen, allowsEmpty: true,
                             "RFC 8314 implicit TLS (e.g. port 465)"),
            .size("max_message_size", \.inbound.maxMessageSize, "advertised as SIZE; larger messages get 552 5.3.4"),
            .positiveInteger("max_recipients", \.inbound.maxRecipients, "per message; more get 452 4.5.3"),
            .positiveInteger("max_connections", \.inbound.maxConnections, "overall; more get 421 4.7.0"),
            .positiveInteger("max_connections_per_client", \.inbound.maxConnectionsPerClient, "per client IP; more get 421 4.7.0"),
            .duration("command_timeout", \.inbound.commandTimeout, "RFC 5321 §4.5.3.2; then 421 4.4.2 and close"),
            .duration("data_timeout", \.inbound.dataTimeout),
            .positiveInteger("max_received_headers", \.inbound.maxReceivedHeaders, "loop detection (RFC 5321 §6.3): more get 554 5.4.6"),
            .choice("bare_line_endings", \.inbound.bareLineEndings, "bare CR, LF or NUL in DATA: 550 5.6.0; or \"normalize\" (see below)"),
        ])
    }

    static var access: ConfigurationSection {
        ConfigurationSection(name: "access", doc: "", keys: [
            .networks("client_networks", \.access.clientNetworks, "empty: anyone may connect. Else: others get 421 4.7.0 at connect"),
            .networks("relay_networks", \.access.relayNetworks, "may relay. Others: 550 5.7.1 at RCPT"),
            .list("relay_domains", \.access.relayDomains, "domains we accept mail for from anyone") { values in
                guard values.allSatisfy({ !$0.isEmpty && !$0.contains("@") && !$0.contains(" ") }) else { return nil }
                return values.map { $0.lowercased() }
            } format: { $0 },
        ])
    }

    static var queue: ConfigurationSection {
        ConfigurationSection(name: "queue", doc: "", keys: [
            .string("path", \.queue.path, "large messages are spooled beside it, in spool/") { $0.isEmpty ? nil : $0 },
        ])
    }

    static var delivery: ConfigurationSection {
        ConfigurationSection(name: "delivery", doc: "", keys: [
            .positiveInteger("workers", \.delivery.workers, "concurrent outbound SMTP sessions, all destinations together"),
            .positiveInteger("max_connections_per_domain", \.delivery.maxConnectionsPerDomain),
            .positiveInteger("max_recipients_per_transaction", \.delivery.maxRecipientsPerTransaction),
            .list("dns_servers", \.delivery.dnsServers,
                  "\"ip\" or \"ip:port\". Empty: the system's /etc/resolv.conf. Also names clients (PTR)") { values in
                values.allSatisfy({ PetrelConfiguration.HostPort(nameServer: $0) != nil }) ? values : nil
            } format: { $0 },
            .positiveInteger("mx_port", \.delivery.mxPort, most: 65535, "the port used on MX hosts (tests use a high port)"),
            .optionalString("smarthost", \.delivery.smarthost, "\"host:port\": when set, all mail goes there instead of to MX hosts") {
                PetrelConfiguration.HostPort($0, defaultPort: 25)
            } format: { $0.description },
            .duration("retry_min", \.delivery.retryMin, "first retry delay, doubling up to retry_max (with jitter)"),
            .duration("retry_max", \.delivery.retryMax),
            .duration("max_queue_lifetime", \.delivery.maxQueueLifetime, "after this, undelivered recipients are bounced (5.4.7)"),
            .duration("delay_warning", \.delivery.delayWarning, allowsZero: true, "one \"delayed\" DSN per message; \"0\" turns it off"),
            .duration("connect_timeout", \.delivery.connectTimeout),
            .duration("command_timeout", \.delivery.commandTimeout, "RFC 5321 §4.5.3.2 waits for the greeting, MAIL, RCPT"),
            .duration("data_timeout", \.delivery.dataTimeout, "the reply to the final \".\""),
            .choice("tls", \.delivery.tls, "to MX hosts: \"none\" | \"opportunistic\" | \"required\""),
            ConfigurationKey(
                name: "smarthost_tls",
                doc: "\"required\" (certificate verified) is the default when smarthost_user is set",
                read: { reader, configuration in
                    try reader.string("smarthost_tls") { value in
                        guard let policy = PetrelConfiguration.TLSPolicy(rawValue: value) else { return nil }
                        configuration.delivery.smarthostTLS = policy
                        return ()
                    }
                },
                render: { TOMLText.string($0.delivery.effectiveSmarthostTLS.rawValue) }
            ),
            .optionalPath("smarthost_user", \.delivery.smarthostUser, "AUTH credentials for the smarthost, sent only over TLS"),
            .optionalPath("smarthost_password_file", \.delivery.smarthostPasswordFile, "its first line is the password"),
            .optionalPath("tls_ca_file", \.delivery.tlsCAFile,
                          "PEM CA certificates that verify next hops under \"required\"; empty: the system trust store"),
        ], check: { delivery, configuration in
            if configuration.delivery.retryMax < configuration.delivery.retryMin {
                throw delivery.error("retry_max", "must not be shorter than retry_min")
            }
        })
    }

    static var routes: ConfigurationSection {
        ConfigurationSection(name: "routes", doc: "per-domain next hop, ahead of the smarthost and MX", keys: [], entries: NamedEntries(
            read: { key, value, configuration in
                let domain = key.lowercased()
                guard !domain.isEmpty, !domain.contains("@"), let text = value.string,
                      let hop = PetrelConfiguration.HostPort(text, defaultPort: 25) else { return false }
                configuration.routes[domain] = hop
                return true
            },
            render: { configuration in
                configuration.routes.keys.sorted().map { (TOMLText.string($0), TOMLText.string(configuration.routes[$0]!.description)) }
            },
            example: "# \"internal.example\" = \"10.0.0.5:25\""
        ))
    }

    static var tls: ConfigurationSection {
        ConfigurationSection(name: "tls", doc: "", keys: [
            .optionalPath("certificate", \.tls.certificate, "PEM chain; with key, STARTTLS is offered"),
            .optionalPath("key", \.tls.key),
        ], check: { tls, configuration in
            if (configuration.tls.certificate == nil) != (configuration.tls.key == nil) {
                throw tls.error(configuration.tls.certificate == nil ? "certificate" : "key", "certificate and key must be given together")
            }
        })
    }

    static var auth: ConfigurationSection {
        ConfigurationSection(name: "auth", doc: "", keys: [
            .string("users_file", \.auth.usersFile, "written by `petrel user add`") { $0.isEmpty ? nil : $0 },
        ])
    }

    static var metrics: ConfigurationSection {
        ConfigurationSection(name: "metrics", doc: "", keys: [
            .optionalString("listen", \.metrics.listen, "e.g. \"127.0.0.1:9025\": /metrics (Prometheus) and /healthz") {
                ListenAddress($0)
            } format: { $0.description },
        ])
    }

    static var log: ConfigurationSection {
        ConfigurationSection(name: "log", doc: "", keys: [
            .choice("format", \.log.format, "or \"json\": one JSON object per line"),
        ])
    }
}

// MARK: - The kinds of key

extension ConfigurationKey {
    typealias Path<Value> = WritableKeyPath<PetrelConfiguration, Value>

    /// A string that `parse` turns into the value, or refuses with `nil`.
    static func string<Value>(
        _ name: String, _ path: Path<Value>, example: String? = nil, _ doc: String = "",
        format: @escaping (Value) -> String = { "\($0)" }, parse: @escaping (String) -> Value?
    ) -> ConfigurationKey {
        ConfigurationKey(
            name: name, doc: doc,
            read: { reader, configuration in
                try reader.string(name) { text in
                    guard let value = parse(text) else { return nil }
                    configuration[keyPath: path] = value
                    return ()
                }
            },
            render: { TOMLText.string(format($0[keyPath: path])) },
            example: example.map(TOMLText.string)
        )
    }

    /// A string whose empty value means none.
    static func optionalString<Value>(
        _ name: String, _ path: Path<Value?>, _ doc: String = "",
        parse: @escaping (String) -> Value?, format: @escaping (Value) -> String
    ) -> ConfigurationKey {
        string(name, path, doc, format: { $0.map(format) ?? "" }) { text in
            if text.isEmpty { return .some(nil) }
            return parse(text).map { .some($0) }
        }
    }

    /// A path or name taken as written; empty: none.
    static func optionalPath(_ name: String, _ path: Path<String?>, _ doc: String = "") -> ConfigurationKey {
        optionalString(name, path, doc, parse: { $0 }, format: { $0 })
    }

    /// One of an enumeration's raw values.
    static func choice<Value: RawRepresentable<String>>(_ name: String, _ path: Path<Value>, _ doc: String = "") -> ConfigurationKey {
        string(name, path, doc, format: \.rawValue, parse: Value.init(rawValue:))
    }

    /// An array of strings that `parse` turns into the value, or refuses with `nil`.
    static func list<Value>(
        _ name: String, _ path: Path<Value>, _ doc: String = "",
        parse: @escaping ([String]) -> Value?, format: @escaping (Value) -> [String]
    ) -> ConfigurationKey {
        ConfigurationKey(
            name: name, doc: doc,
            read: { reader, configuration in
                try reader.list(name) { values in
                    guard let value = parse(values) else { return nil }
                    configuration[keyPath: path] = value
                    return ()
                }
            },
            render: { TOMLText.list(format($0[keyPath: path])) }
        )
    }

    static func listenAddresses(_ name: String, _ path: Path<[ListenAddress]>, allowsEmpty: Bool, _ doc: String) -> ConfigurationKey {
        list(name, path, doc) { values in
            let addresses = values.compactMap(ListenAddress.init)
            return addresses.count == values.count && (allowsEmpty || !addresses.isEmpty) ? addresses : nil
        } format: { $0.map(\.description) }
    }

    static func networks(_ name: String, _ path: Path<NetworkList>, _ doc: String) -> ConfigurationKey {
        list(name, path, doc) { values in
            let blocks = values.compactMap(CIDRBlock.init)
            return blocks.count == values.count ? NetworkList(blocks) : nil
        } format: { $0.blocks.map(\.description) }
    }

    static func positiveInteger(_ name: String, _ path: Path<Int>, most: Int = .max, _ doc: String = "") -> ConfigurationKey {
        ConfigurationKey(
            name: name, doc: doc,
            read: { reader, configuration in try reader.positiveInteger(name) { configuration[keyPath: path] = min($0, most) } },
            render: { "\($0[keyPath: path])" }
        )
    }

    static func size(_ name: String, _ path: Path<Int>, _ doc: String) -> ConfigurationKey {
        ConfigurationKey(
            name: name, doc: doc,
            read: { reader, configuration in try reader.size(name) { configuration[keyPath: path] = $0 } },
            render: { configuration in
                let text = ValueFormats.format(size: configuration[keyPath: path])
                return Int(text) != nil ? text : TOMLText.string(text)
            }
        )
    }

    static func duration(_ name: String, _ path: Path<Duration>, allowsZero: Bool = false, _ doc: String = "") -> ConfigurationKey {
        ConfigurationKey(
            name: name, doc: doc,
            read: { reader, configuration in
                try reader.duration(name, allowZero: allowsZero) { configuration[keyPath: path] = $0 }
            },
            render: { TOMLText.string(ValueFormats.format($0[keyPath: path])) }
        )
    }
}
