import Foundation
import Logging
import MailQueue
import NIOCore
import SMTPTransport
import NIOEmbedded
import PetrelConfig
import Testing
@testable import InboundServer

/// The connection's real pipeline (gate, async bridge, session driver) on `NIOAsyncTestingChannel`,
/// fed a whole client conversation cut in every possible place: the replies must not depend on how
/// the bytes arrive.
struct SessionDriverChannelTests {
    static let conversation = "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@far.test>\r\nDATA\r\nSubject: t\r\n\r\n..dot\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n"
    static let expected = [
        "220 relay.test ESMTP",
        "250-relay.test greets c", "250-PIPELINING", "250-SIZE 26214400", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-SMTPUTF8", "250 DSN",
        "250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: queued as ID", "250 2.0.0 Ok", "221 2.0.0 Bye",
    ]

    /// The driver of a connection from 127.0.0.1 on `channel`, whose gate times out after `timeout`, as the
    /// server sets it up (its clock moves only with `advanceTime`).
    static func driver(on channel: NIOAsyncTestingChannel, timeout: TimeAmount, committer: GroupCommitter,
                       settings: InboundSettings) async throws -> SessionDriver {
        let connection = try await channel.testingEventLoop.executeInContext {
            let gate = ConnectionGate(timeout: timeout)
            try channel.pipeline.syncOperations.addHandler(gate)
            let asyncChannel = try NIOAsyncChannel<ConnectionEvent, ByteBuffer>(wrappingChannelSynchronously: channel)
            return AcceptedConnection(channel: asyncChannel, gate: NIOLoopBound(gate, eventLoop: channel.eventLoop),
                                      listener: .relay, tlsContext: nil)
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2525))
        return SessionDriver(connection: connection, client: IPAddress("127.0.0.1")!, clientName: ClientName(), settings: settings, listener: .relay,
                             committer: committer, authenticator: nil, tlsContext: nil, logger: Logger(label: "test"))
    }

    /// Runs one conversation through the pipeline and returns the reply lines, queue ids replaced by `ID`.
    static func converse(_ pieces: [ByteBuffer], committer: GroupCommitter, settings: InboundSettings) async throws -> [String] {
        let channel = NIOAsyncTestingChannel()
        let driver = try await Self.driver(on: channel, timeout: .minutes(5), committer: committer, settings: settings)
        async let run: Void = driver.run()
        for piece in pieces {
            try await channel.writeInbound(piece)
        }
        try await run
        var output = ""
        while let written = try await channel.readOutbound(as: ByteBuffer.self) {
            output += String(buffer: written)
        }
        return output.split(separator: "\r\n", omittingEmptySubsequences: false).dropLast().map { line in
            line.hasPrefix("250 2.0.0 Ok: queued as ") ? "250 2.0.0 Ok: queued as ID" : String(line)
        }
    }

    @Test func repliesAreTheSameHoweverTheInputIsCut() async throws {
        let directory = NSTemporaryDirectory() + "petrel-driver-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try QueueStore.open(path: directory + "/queue.sqlite")
        let committer = GroupCommitter(store: store, logger: Logger(label: "test"))
        var configuration = PetrelConfiguration()
        configuration.hostname = "relay.test"
        let settings = InboundSettings(configuration)
        let bytes = Array(Self.conversation.utf8)
        // Every cut into two pieces, and the conversation byte by byte.
        var fragmentations: [[ByteBuffer]] = (1..<bytes.count).map { cut in
            [ByteBuffer(bytes: bytes[..<cut]), ByteBuffer(bytes: bytes[cut...])]
        }
        fragmentations.append(bytes.map { ByteBuffer(bytes: [$0]) })

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            for pieces in fragmentations {
                let replies = try await Self.converse(pieces, committer: committer, settings: settings)
                #expect(replies == Self.expected, "\(pieces.map { $0.readableBytes })")
            }
            group.cancelAll()
        }
        #expect(try store.messageCount() == fragmentations.count)
        let texts = try store.listMessages(limit: 1).map { String(decoding: try store.content(queueID: $0.queueID)!, as: UTF8.self) }
        #expect(texts.allSatisfy { $0.hasSuffix("\r\nSubject: t\r\n\r\n.dot\r\nbody\r\n") })
    }

    /// A client silent for the command timeout is told so and the session ends; a moment less is not enough.
    @Test func aSilentClientTimesOut() async throws {
        let directory = NSTemporaryDirectory() + "petrel-driver-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try QueueStore.open(path: directory + "/queue.sqlite")
        var configuration = PetrelConfiguration()
        configuration.hostname = "relay.test"
        configuration.inbound.commandTimeout = .seconds(300)
        let settings = InboundSettings(configuration)
        let channel = NIOAsyncTestingChannel()
        let driver = try await Self.driver(on: channel, timeout: TimeAmount(settings.commandTimeout),
                                           committer: GroupCommitter(store: store, logger: Logger(label: "test")), settings: settings)
        async let run: Void = driver.run()
        #expect(try await channel.waitForOutboundWrite(as: ByteBuffer.self) == ByteBuffer(string: "220 relay.test ESMTP\r\n"))
        await channel.testingEventLoop.advanceTime(by: .seconds(300) - .milliseconds(1))
        #expect(try await channel.readOutbound(as: ByteBuffer.self) == nil)
        await channel.testingEventLoop.advanceTime(by: .milliseconds(1))
        try await run
        #expect(try await channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "421 4.4.2 relay.test Error: timeout exceeded\r\n"))
    }
}
