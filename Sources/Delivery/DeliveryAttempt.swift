import Foundation
import LogEvents
import MailQueue
import NIOConcurrencyHelpers
import PetrelConfig
import SMTPProtocol

/// One attempt at one job: find the route, then try its hosts and their addresses in order until one
/// takes the transaction (RFC 5321 §5.1: try the next MX when one cannot be reached or says `4xx`).
struct DeliveryAttempt {
    struct Result {
        var report: AttemptReport
        /// The TLS version of the session that carried the transaction, `nil` for plaintext.
        var tls: String? = nil
    }

    let router: Router
    let cache: ConnectionCache
    /// The task group that serves the connections this attempt opens.
    let connections: ConnectionTasks
    let heloName: String
    let timeouts: ClientTimeouts
    /// Connections attempted per delivery, over all hosts and addresses.
    let maximumConnections: Int
    let tlsPolicy: PetrelConfiguration.TLSPolicy
    let smarthostTLSPolicy: PetrelConfiguration.TLSPolicy
    let smarthostCredentials: ClientSession.Security.Credentials?
    let opportunisticTLS: ClientTLS?
    let verifiedTLS: ClientTLS?
    /// Hosts whose TLS handshake failed lately: under opportunistic TLS they get plaintext for a while.
    let tlsFailures: TLSFailureMemory
    var log: @Sendable (HopEvent) -> Void = { _ in }

    /// What this route asks of TLS and AUTH.
    func security(for kind: Route.Kind, key: String) -> (ClientSession.Security, ClientTLS?) {
        let policy = kind == .smarthost ? smarthostTLSPolicy : tlsPolicy
        let credentials = kind == .smarthost ? smarthostCredentials : nil
        switch policy {
        case .none:
            return (ClientSession.Security(credentials: credentials), nil)
        case .opportunistic:
            let usesTLS = !tlsFailures.recentlyFailed(key)
            return (ClientSession.Security(usesTLS: usesTLS, credentials: credentials), opportunisticTLS)
        case .required:
            return (ClientSession.Security(requiresTLS: true, credentials: credentials), verifiedTLS)
        }
    }

    func run(_ job: DeliveryJob, content: StoredContent) async -> Result {
        let route: Route
        do {
            route = try await router.route(for: job.domain)
        } catch {
            // The DNS answer or the failed lookup is the relay's own finding: no server said anything.
            return Result(report: .noRoute(LocalError(error.reply)))
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
        let outbound = OutboundContent(transaction: transaction, content: content)
        // Hosts that could not take the message for what they lack (RFC 6152, RFC 6531): when every host
        // tried says so, the message bounces with that (local, permanent) error; when any failed otherwise,
        // it is deferred with that host's failure.
        var refusal: LocalError?
        var refusals = 0
        var isEveryHostTried = true
        var lastFailure: AttemptResult?
        var connectionsTried = 0
        hosts: for host in route.hosts {
            for address in host.addresses {
                guard connectionsTried < maximumConnections else {
                    isEveryHostTried = false
                    break hosts
                }
                connectionsTried += 1
                let key = "\(address):\(host.port)"
                do {
                    let (connection, outcomes) = try await transact(outbound, host: host, address: address, kind: route.kind)
                    let result = Result(report: Self.report(outcomes, on: connection), tls: connection.tlsVersion)
                    await cache.park(connection)
                    return result
                } catch let hop as HopRefusal {
                    let relay = "\(host.name)[\(address)]:\(host.port)"
                    refusal = Self.localError(hop.reply, at: relay)
                    refusals += 1
                    log(HopEvent(queueID: job.queueID, kind: .cannotTakeMessage, relay: relay, reply: hop.reply.description))
                } catch let failure as HostFailure {
                    let relay = "\(host.name)[\(address)]:\(host.port)"
                    lastFailure = failure.isRemoteReply ? .reply(failure.reply, relay: relay) : .localError(Self.localError(failure.reply, at: relay))
                    if failure.isLocalFailure { break hosts }
                    let (security, _) = self.security(for: route.kind, key: key)
                    if failure.isTLSFailure && !security.requiresTLS && security.usesTLS {
                        // RFC 7435 §4: a failed opportunistic handshake falls back to plaintext for this host.
                        tlsFailures.remember(key)
                        log(HopEvent(queueID: job.queueID, kind: .tlsFallback, relay: relay, reply: failure.reply.description))
                        if let (connection, outcomes) = try? await transact(outbound, host: host, address: address, kind: route.kind) {
                            let result = Result(report: Self.report(outcomes, on: connection))
                            await cache.park(connection)
                            return result
                        }
                    }
                } catch {
                    lastFailure = .localError(LocalError(status: EnhancedStatusCode(4, 4, 0), description: "\(error)"))
                }
            }
        }
        if let refusal, refusals == connectionsTried, isEveryHostTried {
            return Result(report: .noHost(.localError(refusal)))
        }
        if let lastFailure {
            return Result(report: .noHost(lastFailure))
        }
        if let refusal {
            // Not every host was tried: one that was not might take the message, so it waits for a retry.
            let status = EnhancedStatusCode(4, refusal.status.subject, refusal.status.detail)
            return Result(report: .noHost(.localError(LocalError(status: status, description: refusal.description))))
        }
        return Result(report: .noHost(.localError(LocalError(status: EnhancedStatusCode(4, 4, 1), description: "no host could be reached"))))
    }

    /// The relay's own error at a host, naming the host once: `mx.example[192.0.2.1]:25: TLS is required, …`.
    private static func localError(_ reply: SMTPReply, at relay: String) -> LocalError {
        var error = LocalError(reply)
        if !error.description.contains(relay) { error.description = "\(relay): \(error.description)" }
        return error
    }

    private static func report(_ outcomes: [RecipientOutcome], on connection: OutboundConnection) -> AttemptReport {
        .transaction(outcomes, relay: connection.relay, remoteSupportsDSN: connection.capabilities?.supportsDSN ?? false)
    }

    /// A transaction on a cached connection when there is one (retried once on a fresh connection if the
    /// cached one turns out dead), else on a new one. A host that cannot take this message keeps its
    /// connection for the next one.
    private func transact(_ outbound: OutboundContent, host: Route.Host, address: String, kind: Route.Kind)
        async throws -> (OutboundConnection, [RecipientOutcome]) {
        if let cached = await cache.take("\(address):\(host.port)") {
            do {
                return (cached, try await send(outbound, on: cached))
            } catch let failure as HostFailure where failure.isStaleConnection {
                // The server closed the idle connection: try once more on a fresh one.
                cached.close()
            } catch let refusal as HopRefusal {
                await cache.park(cached)
                throw refusal
            } catch {
                cached.close()
                throw error
            }
        }
        let (security, tls) = self.security(for: kind, key: "\(address):\(host.port)")
        let connection = try await OutboundConnection.open(hostName: host.name, address: address, port: host.port,
                                                           heloName: heloName, timeouts: timeouts, security: security, tls: tls,
                                                           idleTimeout: cache.idleReadTimeout, in: connections)
        do {
            return (connection, try await send(outbound, on: connection))
        } catch let refusal as HopRefusal {
            await cache.park(connection)
            throw refusal
        } catch {
            connection.close()
            throw error
        }
    }

    /// The text in the form this host may take, or ``HopRefusal``.
    private func send(_ outbound: OutboundContent, on connection: OutboundConnection) async throws -> [RecipientOutcome] {
        switch try await outbound.prepare(for: connection.capabilities ?? ServerCapabilities(isExtended: false)) {
        case .send(let transaction, let content):
            return try await connection.send(transaction, content: content)
        case .refuse(let reply):
            throw HopRefusal(reply: reply)
        }
    }
}

/// A host that cannot take this message for what it does not offer (8BITMIME, SMTPUTF8), decided before
/// the transaction starts.
struct HopRefusal: Error {
    var reply: SMTPReply
}

/// Remembers, for an hour, the hosts whose TLS handshake failed.
final class TLSFailureMemory: Sendable {
    /// When each host failed, as the time since this memory was made on its clock.
    private let failures = NIOLockedValueBox<[String: Duration]>([:])
    let duration: Duration
    private let now: @Sendable () -> Duration

    init(duration: Duration = .seconds(3600), clock: some Clock<Duration> = ContinuousClock()) {
        self.duration = duration
        let origin = clock.now
        self.now = { origin.duration(to: clock.now) }
    }

    func remember(_ key: String) {
        let failedAt = now()
        failures.withLockedValue { $0[key] = failedAt }
    }

    func recentlyFailed(_ key: String) -> Bool {
        failures.withLockedValue { failures in
            guard let since = failures[key] else { return false }
            if now() - since > duration {
                failures[key] = nil
                return false
            }
            return true
        }
    }
}
