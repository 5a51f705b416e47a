extension PetrelConfiguration {
    /// The effective configuration as TOML, every key with its value, defaults filled in
    /// (`petrel config check --print`). Parsing the output gives the same configuration.
    public func renderTOML() -> String {
        func quoted(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        func list(_ items: [String]) -> String { "[" + items.map(quoted).joined(separator: ", ") + "]" }
        func duration(_ value: Duration) -> String { quoted(ValueFormats.format(value)) }
        var lines: [String] = []
        if let sourceFile { lines.append("# effective configuration of \(sourceFile)") } else { lines.append("# embedded defaults") }
        lines.append("hostname = \(quoted(hostname))")
        lines.append("")
        lines.append("[inbound]")
        lines.append("listen = \(list(inbound.listen.map(\.description)))")
        lines.append("submission_listen = \(list(inbound.submissionListen.map(\.description)))")
        lines.append("submissions_listen = \(list(inbound.submissionsListen.map(\.description)))")
        lines.append("max_message_size = \(inbound.maxMessageSize)")
        lines.append("max_recipients = \(inbound.maxRecipients)")
        lines.append("max_connections = \(inbound.maxConnections)")
        lines.append("max_connections_per_client = \(inbound.maxConnectionsPerClient)")
        lines.append("command_timeout = \(duration(inbound.commandTimeout))")
        lines.append("data_timeout = \(duration(inbound.dataTimeout))")
        lines.append("max_received_headers = \(inbound.maxReceivedHeaders)")
        lines.append("bare_line_endings = \(quoted(inbound.bareLineEndings.rawValue))")
        lines.append("")
        lines.append("[access]")
        lines.append("client_networks = \(list(access.clientNetworks.blocks.map(\.description)))")
        lines.append("relay_networks = \(list(access.relayNetworks.blocks.map(\.description)))")
        lines.append("relay_domains = \(list(access.relayDomains))")
        lines.append("")
        lines.append("[queue]")
        lines.append("path = \(quoted(queue.path))")
        lines.append("")
        lines.append("[delivery]")
        lines.append("workers = \(delivery.workers)")
        lines.append("max_connections_per_domain = \(delivery.maxConnectionsPerDomain)")
        lines.append("max_recipients_per_transaction = \(delivery.maxRecipientsPerTransaction)")
        lines.append("dns_servers = \(list(delivery.dnsServers))")
        lines.append("mx_port = \(delivery.mxPort)")
        lines.append("smarthost = \(quoted(delivery.smarthost?.description ?? ""))")
        lines.append("retry_min = \(duration(delivery.retryMin))")
        lines.append("retry_max = \(duration(delivery.retryMax))")
        lines.append("max_queue_lifetime = \(duration(delivery.maxQueueLifetime))")
        lines.append("delay_warning = \(duration(delivery.delayWarning))")
        lines.append("connect_timeout = \(duration(delivery.connectTimeout))")
        lines.append("command_timeout = \(duration(delivery.commandTimeout))")
        lines.append("data_timeout = \(duration(delivery.dataTimeout))")
        lines.append("tls = \(quoted(delivery.tls.rawValue))")
        lines.append("smarthost_tls = \(quoted(delivery.effectiveSmarthostTLS.rawValue))")
        lines.append("smarthost_user = \(quoted(delivery.smarthostUser ?? ""))")
        lines.append("smarthost_password_file = \(quoted(delivery.smarthostPasswordFile ?? ""))")
        lines.append("tls_ca_file = \(quoted(delivery.tlsCAFile ?? ""))")
        lines.append("")
        lines.append("[routes]")
        for domain in routes.keys.sorted() {
            lines.append("\(quoted(domain)) = \(quoted(routes[domain]!.description))")
        }
        lines.append("")
        lines.append("[tls]")
        lines.append("certificate = \(quoted(tls.certificate ?? ""))")
        lines.append("key = \(quoted(tls.key ?? ""))")
        lines.append("")
        lines.append("[auth]")
        lines.append("users_file = \(quoted(auth.usersFile))")
        lines.append("")
        lines.append("[metrics]")
        lines.append("listen = \(quoted(metrics.listen?.description ?? ""))")
        lines.append("")
        lines.append("[log]")
        lines.append("format = \(quoted(log.format.rawValue))")
        return lines.joined(separator: "\n") + "\n"
    }
}
