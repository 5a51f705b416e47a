import NIOCore
import SMTPTransport

/// The connection's read timeout as the session's task sees it: set per wait, and stopped while the
/// server does its own work. A commit or a spool write also stops the reading (backpressure), so a client
/// still sending would otherwise be told `421 4.4.2` for the time the server took (issue 11).
struct ReadClock: Sendable {
    let gate: NIOLoopBound<ConnectionGate>
    let eventLoop: any EventLoop

    /// Starts the wait for the client with `duration` as its timeout.
    func start(_ duration: Duration) {
        let gate = self.gate
        eventLoop.execute { gate.value.setTimeout(TimeAmount(duration)) }
    }

    /// Runs `work`, the server's own, with the clock stopped; the current timeout runs again from its end.
    func stopped<Result>(during work: () async throws -> Result) async rethrows -> Result {
        let gate = self.gate
        eventLoop.execute { gate.value.suspendTimeout() }
        defer { eventLoop.execute { gate.value.resumeTimeout() } }
        return try await work()
    }
}
