import DNSResolver
import Foundation
import Logging
import MailQueue
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PetrelConfig
import ServiceLifecycle
import PetrelTestSupport
import Testing
@testable import InboundServer

/// The whole inbound server on real loopback sockets, inside a `ServiceGroup`, with a real queue file.
struct InboundServerTests {
    /// Runs a server on an ephemeral port with `configure` applied, and hands the test its address and store.
    static func withServer(
        _ configure: (inout PetrelConfiguration) -> Void = { _ in },
        clientNames: (any ClientNameResolving)? = nil,
        _ body: (SocketAddress, QueueStore) async throws -> Void
    ) async throws {
        let directory = NSTemporaryDirectory() + "petrel-inbound-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = PetrelConfiguration()
        configuration.hostname = "relay.test"
        configuration.inbound.listen = [ListenAddress("127.0.0.1:0")!]
        configuration.queue.path = directory + "/queue.sqlite"
        configure(&configuration)
        let store = try QueueStore.open(path: configuration.queue.path)
        let logger = Logger(label: "test")
        let committer = GroupCommitter(store: store, logger: logger)
        let server = InboundServer(configuration: configuration, committer: committer, logger: logger, clientNames: clientNames)
        let group = ServiceGroup(services: [committer, server], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let address = try await server.listeningAddresses()[0]
            do {
                try await body(address, store)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test func acceptsAMessageAndStoresItBeforeSaying250() async throws {
        try await Self.withServer { address, store in
            var client = try await SMTPTestClient.connect(to: address)
            #expect(try await client.readReply() == "220 relay.test ESMTP")
            #expect(try await client.command("EHLO client.test")?.hasPrefix("250-relay.test greets client.test\n250-PIPELINING") == true)
            #expect(try await client.command("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok")
            #expect(try await client.command("RCPT TO:<x@far.test>") == "250 2.1.5 Ok")
            #expect(try await client.command("DATA") == "354 End data with <CR><LF>.<CR><LF>")
            let reply = try #require(try await client.command("Subject: t\r\n\r\n..dotted\r\n."))
            #expect(reply.hasPrefix("250 2.0.0 Ok: queued as "))
            let queueID = String(reply.split(separator: " ").last!)
            // The 250 came after the commit: the message is there now.
            let stored = try #require(try store.message(queueID: queueID))
            #expect(stored.sender == "a@b.test")
            #expect(stored.recipients.map(\.address) == ["x@far.test"])
            let text = String(decoding: try store.content(queueID: queueID)!, as: UTF8.self)
            #expect(text.hasPrefix("Received: from client.test ([127.0.0.1])\r\n\tby relay.test (Petrel) with ESMTP id \(queueID)\r\n\tfor <x@far.test>; "))
            #expect(text.contains("\r\nDate: "))
            #expect(text.contains("\r\nMessage-ID: <\(queueID)@relay.test>\r\n"))
            #expect(text.hasSuffix("Subject: t\r\n\r\n.dotted\r\n"))
            #expect(try await client.command("QUIT") == "221 2.0.0 Bye")
            #expect(try await client.readReply() == nil)
        }
    }

    @Test func answersPipelinedCommandsInOrder() async throws {
        try await Self.withServer { address, _ in
            var client = try await SMTPTestClient.connect(to: address)
            _ = try await client.readReply()
            try await client.send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@far.test>\r\nRCPT TO:<bad address>\r\nRCPT TO:<y@far.test>\r\nDATA\r\n")
            var codes: [String] = []
            for _ in 0..<6 { codes.append(String(try await client.readReply()!.prefix(3))) }
            #expect(codes == ["250", "250", "250", "501", "250", "354"])
            try await client.send("body\r\n.\r\nNOOP\r\n")
            #expect(try await client.readReply()?.hasPrefix("250 2.0.0 Ok: queued as") == true)
            #expect(try await client.readReply() == "250 2.0.0 Ok")
            await client.close()
        }
    }

    @Test func refusesRelayingFromOutsideTheRelayNetworks() async throws {
        try await Self.withServer({ configuration in
            configuration.access.relayNetworks = NetworkList([CIDRBlock("127.0.0.1/32")!])
            configuration.access.relayDomains = ["ours.test"]
        }) { address, _ in
            var stranger = try await SMTPTestClient.connect(to: address, from: "127.0.0.2")
            _ = try await stranger.readReply()
            _ = try await stranger.command("EHLO stranger")
            _ = try await stranger.command("MAIL FROM:<a@b.test>")
            #expect(try await stranger.command("RCPT TO:<x@far.test>") == "550 5.7.1 <x@far.test>: Relay access denied")
            #expect(try await stranger.command("RCPT TO:<x%far.test@ours.test>")?.hasPrefix("550 5.7.1") == true)
            #expect(try await stranger.command("RCPT TO:<x@ours.test>") == "250 2.1.5 Ok")
            await stranger.close()

            var subscriber = try await SMTPTestClient.connect(to: address, from: "127.0.0.1")
            _ = try await subscriber.readReply()
            _ = try await subscriber.command("EHLO subscriber")
            _ = try await subscriber.command("MAIL FROM:<a@b.test>")
            #expect(try await subscriber.command("RCPT TO:<x@far.test>") == "250 2.1.5 Ok")
            await subscriber.close()
        }
    }

    @Test func closesTheDoorOnClientsOutsideTheClientNetworks() async throws {
        try await Self.withServer({ configuration in
            configuration.access.clientNetworks = NetworkList([CIDRBlock("127.0.0.1/32")!])
        }) { address, _ in
            var stranger = try await SMTPTestClient.connect(to: address, from: "127.0.0.2")
            #expect(try await stranger.readReply() == "421 4.7.0 relay.test Service not available")
            #expect(try await stranger.readReply() == nil)
            var subscriber = try await SMTPTestClient.connect(to: address, from: "127.0.0.1")
            #expect(try await subscriber.readReply() == "220 relay.test ESMTP")
            await subscriber.close()
        }
    }

    @Test func limitsConnectionsPerClient() async throws {
        try await Self.withServer({ configuration in
            configuration.inbound.maxConnectionsPerClient = 2
        }) { address, _ in
            var first = try await SMTPTestClient.connect(to: address)
            var second = try await SMTPTestClient.connect(to: address)
            #expect(try await first.readReply()?.hasPrefix("220") == true)
            #expect(try await second.readReply()?.hasPrefix("220") == true)
            var third = try await SMTPTestClient.connect(to: address)
            #expect(try await third.readReply() == "421 4.7.0 relay.test Error: too many connections")
            var other = try await SMTPTestClient.connect(to: address, from: "127.0.0.3")
            #expect(try await other.readReply()?.hasPrefix("220") == true)
            await first.close()
            await second.close()
            await other.close()
        }
    }

    /// Client names for the tests: one answer for every address, or a lookup that never ends (until cancelled).
    struct FakeClientNames: ClientNameResolving {
        var name: String?
        /// Signalled when a lookup answers.
        var answers = EventCount()

        func verifiedName(of address: String) async -> String? {
            guard let name else {
                try? await Task.sleep(for: .seconds(3600))
                return nil
            }
            answers.signal()
            return name
        }
    }

    @Test(.timeLimit(.minutes(1))) func theReceivedFieldNamesAVerifiedClient() async throws {
        let names = FakeClientNames(name: "vm.example.test")
        try await Self.withServer(clientNames: names) { address, store in
            var client = try await SMTPTestClient.connect(to: address)
            _ = try await client.readReply()
            _ = try await client.command("EHLO vm")
            await names.answers.wait(after: 0)
            _ = try await client.command("MAIL FROM:<a@b.test>")
            _ = try await client.command("RCPT TO:<x@far.test>")
            _ = try await client.command("DATA")
            let reply = try #require(try await client.command("Subject: t\r\n\r\nx\r\n."))
            let queueID = String(reply.split(separator: " ").last!)
            let text = String(decoding: try store.content(queueID: queueID)!, as: UTF8.self)
            #expect(text.hasPrefix("Received: from vm (vm.example.test [127.0.0.1])\r\n"))
            await client.close()
        }
    }

    @Test func aClientNameLookupThatNeverEndsHoldsNothingUp() async throws {
        try await Self.withServer({ configuration in
            configuration.inbound.maxConnectionsPerClient = 1
        }, clientNames: FakeClientNames(name: nil)) { address, store in
            let started = ContinuousClock.now
            var client = try await SMTPTestClient.connect(to: address)
            #expect(try await client.readReply() == "220 relay.test ESMTP")
            _ = try await client.command("EHLO vm")
            _ = try await client.command("MAIL FROM:<a@b.test>")
            _ = try await client.command("RCPT TO:<x@far.test>")
            _ = try await client.command("DATA")
            let reply = try #require(try await client.command("Subject: t\r\n\r\nx\r\n."))
            #expect(reply.hasPrefix("250 2.0.0 Ok: queued as "))
            #expect(ContinuousClock.now - started < .seconds(5))
            let queueID = String(reply.split(separator: " ").last!)
            let text = String(decoding: try store.content(queueID: queueID)!, as: UTF8.self)
            #expect(text.hasPrefix("Received: from vm ([127.0.0.1])\r\n"))
            #expect(try await client.command("QUIT") == "221 2.0.0 Bye")
            #expect(try await client.readReply() == nil)
            // The session's end ends its lookup: the connection's slot is free again.
            var greeting: String?
            for _ in 0..<100 {
                var next = try await SMTPTestClient.connect(to: address)
                greeting = try await next.readReply()
                await next.close()
                if greeting?.hasPrefix("220") == true { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(greeting == "220 relay.test ESMTP")
        }
    }

    @Test func streamsALargeMessageToASpoolFile() async throws {
        try await Self.withServer { address, store in
            var client = try await SMTPTestClient.connect(to: address)
            _ = try await client.readReply()
            _ = try await client.command("EHLO c")
            _ = try await client.command("MAIL FROM:<a@b.test>")
            _ = try await client.command("RCPT TO:<x@far.test>")
            _ = try await client.command("DATA")
            let line = String(repeating: "0123456789", count: 10) + "\r\n"
            let chunk = String(repeating: line, count: 1000)  // 102 KB
            for _ in 0..<20 { try await client.send(chunk) }
            let reply = try #require(try await client.command("."))
            #expect(reply.hasPrefix("250 2.0.0 Ok: queued as "))
            let queueID = String(reply.split(separator: " ").last!)
            let spoolFile = try await store.pool.read { db in
                try String.fetchOne(db, sql: "SELECT spool_file FROM message WHERE queue_id = ?", arguments: [queueID])
            }
            #expect(spoolFile == queueID)
            let text = try #require(try store.content(queueID: queueID))
            #expect(text.count > 20 * chunk.utf8.count)
            #expect(String(decoding: text, as: UTF8.self).hasSuffix(chunk))
            await client.close()
        }
    }

    @Test func shutdownSays421ToIdleClients() async throws {
        let directory = NSTemporaryDirectory() + "petrel-inbound-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = PetrelConfiguration()
        configuration.hostname = "relay.test"
        configuration.inbound.listen = [ListenAddress("127.0.0.1:0")!]
        configuration.queue.path = directory + "/queue.sqlite"
        let store = try QueueStore.open(path: configuration.queue.path)
        let logger = Logger(label: "test")
        let committer = GroupCommitter(store: store, logger: logger)
        let server = InboundServer(configuration: configuration, committer: committer, logger: logger)
        let group = ServiceGroup(services: [committer, server], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let address = try await server.listeningAddresses()[0]
            var client = try await SMTPTestClient.connect(to: address)
            _ = try await client.readReply()
            #expect(try await client.command("EHLO c")?.hasPrefix("250") == true)
            await group.triggerGracefulShutdown()
            #expect(try await client.readReply() == "421 4.3.2 relay.test Service shutting down, closing transmission channel")
            #expect(try await client.readReply() == nil)
            try await tasks.waitForAll()
        }
    }
}
