import SMTPProtocol

/// What one attempt at a job found out, as ``DeliveryPolicy`` reads it: the facts, before any decision.
enum AttemptReport: Hashable, Sendable {
    /// A server took the transaction: one outcome per recipient, in order (RFC 5321 §3.3), from `relay`
    /// (`host[ip]:port`).
    case transaction([RecipientOutcome], relay: String, remoteSupportsDSN: Bool)
    /// No route to the domain: a DNS answer that rules delivery out (NXDOMAIN, null MX: permanent) or a
    /// lookup that failed (temporary), by the error's status class.
    case noRoute(LocalError)
    /// Routes, but no host took the transaction: the last host's own reply (a `421` greeting, a refused
    /// MAIL) or a local error (connection refused, a timeout, TLS). RFC 5321 §4.5.4.1: retried later, but
    /// for a local error of class 5, which no retry can help.
    case noHost(AttemptResult)
}
