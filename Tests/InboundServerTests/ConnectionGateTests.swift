import NIOCore
import NIOEmbedded
import SMTPTransport
import Testing

/// The read timeout on an `EmbeddedChannel`, whose clock moves only when told: it measures the peer's
/// silence, and not the time the server spends on its own work (issue 11).
struct ConnectionGateTests {
    /// A connected channel with a gate of `timeout` in front of the test.
    static func channel(timeout: TimeAmount) throws -> (EmbeddedChannel, ConnectionGate) {
        let channel = EmbeddedChannel()
        let gate = ConnectionGate(timeout: timeout)
        try channel.pipeline.syncOperations.addHandler(gate)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 25)).wait()
        return (channel, gate)
    }

    /// How many `timedOut` events the gate has passed on, the bytes events read past.
    static func timeouts(_ channel: EmbeddedChannel) throws -> Int {
        var count = 0
        while let event = try channel.readInbound(as: ConnectionEvent.self) {
            if case .timedOut = event { count += 1 }
        }
        return count
    }

    @Test func aSilentPeerTimesOutAndReadsPushTheDeadline() throws {
        let (channel, _) = try Self.channel(timeout: .seconds(10))
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        try channel.writeInbound(ByteBuffer(string: "NOOP\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(try Self.timeouts(channel) == 0)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try Self.timeouts(channel) == 1)
    }

    @Test func theServersOwnWorkDoesNotCount() throws {
        let (channel, gate) = try Self.channel(timeout: .seconds(10))
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        // A slow commit: the peer, waiting for our reply or held back by backpressure, is not silent.
        gate.suspendTimeout()
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        try channel.writeInbound(ByteBuffer(string: "more text\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(try Self.timeouts(channel) == 0)
        // The work is done: the whole timeout runs again from now.
        gate.resumeTimeout()
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(try Self.timeouts(channel) == 0)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try Self.timeouts(channel) == 1)
    }

    @Test func settingATimeoutEndsTheSuspension() throws {
        let (channel, gate) = try Self.channel(timeout: .seconds(10))
        gate.suspendTimeout()
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        gate.setTimeout(.seconds(3))
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try Self.timeouts(channel) == 0)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try Self.timeouts(channel) == 1)
    }
}
