import MailQueue
import SMTPProtocol

/// One attempt at one job: find the route, then try its hosts and their addresses in order until one
/// takes the transaction (RFC 5321 §5.1: try the next MX when one cannot be reached or says `4xx`).
struct DeliveryAttempt {
    struct Result {
        /// One outcome per job recipient, in order.
        var outcomes: [RecipientOutcome]
        /// `host[ip]:port` of the server that answered the transaction, if any.
        var relay: String?
        var remoteSupportsDSN: Bool
    }

    let router: Router
    let cache: ConnectionCache
    let heloName: String
    let timeouts: ClientTimeouts
    /// Connections attempted per delivery, over all hosts and addresses.
    let maximumConnections: Int

    func run(_ job: DeliveryJob, content: StoredContent) async -> Result {
        let route: Route
        do {
            route = try await router.route(for: job.domain)
        } catch {
            let outcome: RecipientOutcome = error.isPermanent ? .failed(error.reply) : .deferred(error.reply)
            return Result(outcomes: Array(repeating: outcome, count: job.recipients.count), relay: nil, remoteSupportsDSN: false)
        }
        let transaction = OutboundTransaction(
            reversePath: job.reversePath,
            parameters: job.parameters,
            recipients: job.recipients.map {
                var parameters = RecipientParameters()
                parameters.notify = $0.notify
                parameters.originalRecipient = $0.originalRecipient
                return OutboundRecipient(address: $0.address, parameters: parameters)
            },
            size: job.size
        )
        var lastFailure = SMTPReply(451, EnhancedStatusCode(4, 4, 1), "no host could be reached")
        var lastRelay: String?
        var connectionsTried = 0
        hosts: for host in route.hosts {
            for address in host.addresses {
                guard connectionsTried < maximumConnections else { break hosts }
                connectionsTried += 1
                do {
                    let (connection, outcomes) = try await transact(transaction, content: content, host: host, address: address)
                    let relay = connection.relay
                    let supportsDSN = connection.capabilities?.supportsDSN ?? false
                    await cache.park(connection)
                    return Result(outcomes: outcomes, relay: relay, remoteSupportsDSN: supportsDSN)
                } catch let failure as HostFailure {
                    lastFailure = failure.reply
                    lastRelay = "\(host.name)[\(address)]:\(host.port)"
                } catch {
                    lastFailure = SMTPReply(451, EnhancedStatusCode(4, 4, 0), "\(error)")
                }
            }
        }
        let deferred = RecipientOutcome.deferred(lastFailure.isPositive || lastFailure.isPermanentFailure
            ? SMTPReply(451, lastFailure.enhancedCode.map { EnhancedStatusCode(4, $0.subject, $0.detail) }, lastFailure.lines)
            : lastFailure)
        return Result(outcomes: Array(repeating: deferred, count: job.recipients.count), relay: lastRelay, remoteSupportsDSN: false)
    }

    /// A transaction on a cached connection when there is one (retried once on a fresh connection if the
    /// cached one turns out dead), else on a new one.
    private func transact(_ transaction: OutboundTransaction, content: StoredContent, host: Route.Host, address: String)
        async throws -> (OutboundConnection, [RecipientOutcome]) {
        if let cached = await cache.take("\(address):\(host.port)") {
            do {
                return (cached, try await cached.send(transaction, content: content))
            } catch let failure as HostFailure where failure.isStaleConnection {
                await cached.close()
            }
        }
        let connection = try await OutboundConnection.open(hostName: host.name, address: address, port: host.port,
                                                           heloName: heloName, timeouts: timeouts)
        do {
            return (connection, try await connection.send(transaction, content: content))
        } catch {
            await connection.close()
            throw error
        }
    }
}
