import DNSResolver
import Foundation
import GRDB
import MailQueue
import NIOConcurrencyHelpers
import PetrelConfig
import PetrelTestSupport
import SMTPProtocol
import Testing
@testable import Delivery

/// The delivery engine against a real DNS server (dnsmasq on a loopback high port) and scripted SMTP
/// servers on 127.0.0.x: routing, failover, retries, per-recipient results, expiry and bounces.
@Suite(.serialized)
struct DeliveryEndToEndTests {
    /// A free port for every fake mail exchanger (`mx_port` is one port for all hosts).
    static func freePort() throws -> Int { try DNSTestServer.freePort(ipv6: false) }

    @Test func failsOverToTheNextMXByPreference() async throws {
        let port = try Self.freePort()
        let backup = try await FakeSMTPServer(host: "127.0.0.3", port: port)
        defer { backup.stop() }
        // mx1 (127.0.0.2) has nothing listening: connection refused.
        let dns = try DNSTestServer(records: [
            .mx(domain: "pref.test", preference: 10, exchange: "mx1.pref.test"),
            .mx(domain: "pref.test", preference: 20, exchange: "mx2.pref.test"),
            .a(host: "mx1.pref.test", address: "127.0.0.2"),
            .a(host: "mx2.pref.test", address: "127.0.0.3"),
        ])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["bob@pref.test"])
            try await harness.waitUntil("delivery to the backup MX") { backup.messages.count == 1 }
            let message = backup.messages[0]
            #expect(message.mailFrom == "alice@sender.test")
            #expect(message.recipients == ["bob@pref.test"])
            #expect(message.text.hasPrefix("Received: from client.test\r\nFrom: <alice@sender.test>"))
            // The stored line ".dot line" went out dot-stuffed and came back whole.
            #expect(message.text.hasSuffix("\r\nHello.\r\n.dot line\r\n"))
            try await harness.waitUntil("the message to leave the queue") { try harness.store.message(queueID: id) == nil }
        }
    }

    /// More mail than the dispatcher has room for: what the commit cannot hand over waits in the queue for
    /// the feeder's claim, and every message is delivered once.
    @Test func mailBeyondTheDispatchersRoomIsClaimedFromTheQueue() async throws {
        let port = try Self.freePort()
        let server = try await FakeSMTPServer(host: "127.0.0.5", port: port)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.a(host: "busy.test", address: "127.0.0.5")])
        try await DeliveryHarness.run(dns: dns, mxPort: port, configure: { $0.delivery.workers = 1 }) { harness in
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<40 {
                    group.addTask { try await harness.enqueue(from: "alice@sender.test", to: ["r\(index)@busy.test"]) }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            try await harness.waitUntil("every message delivered", timeout: .seconds(30)) { server.messages.count >= 40 }
            try await harness.waitUntil("the queue to empty") { try harness.store.messageCount() == 0 }
            #expect(server.messages.count == 40)
            #expect(Set(server.messages.flatMap(\.recipients)).count == 40)
            #expect(ids.count == 40)
        }
    }

    @Test func usesTheImplicitMXWhenThereIsNoMX() async throws {
        let port = try Self.freePort()
        let server = try await FakeSMTPServer(host: "127.0.0.4", port: port)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.a(host: "implicit.test", address: "127.0.0.4")])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            try await harness.enqueue(from: "alice@sender.test", to: ["bob@implicit.test"])
            try await harness.waitUntil("delivery to the domain's own address") { server.messages.count == 1 }
        }
    }

    /// Two domains fail in one round (null MX, NXDOMAIN): one DSN for the message lists both (RFC 3464 §2).
    @Test func bouncesNullMXAndNXDOMAINWithOneDSNToTheSender() async throws {
        let port = try Self.freePort()
        let senderMX = try await FakeSMTPServer(host: "127.0.0.5", port: port)
        defer { senderMX.stop() }
        let dns = try DNSTestServer(records: [
            .nullMX(domain: "nullmx.test"),
            .mx(domain: "sender.test", preference: 10, exchange: "mx.sender.test"),
            .a(host: "mx.sender.test", address: "127.0.0.5"),
        ])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["bob@nullmx.test", "carol@nx.test"])
            try await harness.waitUntil("the bounce at the sender's MX") { senderMX.messages.count >= 1 }
            try await harness.waitUntil("the message to leave the queue") { try harness.store.message(queueID: id) == nil }
            // A DSN per domain would have been queued by then too: wait until whatever was queued has gone.
            try await harness.waitUntil("the bounce to leave the queue") { try harness.store.messageCount() == 0 }
            #expect(senderMX.messages.count == 1, "one DSN for the message, not one per domain")
            let bounce = try #require(senderMX.messages.first)
            #expect(bounce.mailFrom == "")
            #expect(bounce.recipients == ["alice@sender.test"])
            #expect(bounce.text.contains("Content-Type: multipart/report; report-type=delivery-status"))
            #expect(bounce.text.contains("Subject: test"))  // the original headers come back
            #expect(bounce.text.components(separatedBy: "Action: failed").count == 3)
            #expect(bounce.text.contains("Final-Recipient: rfc822; bob@nullmx.test"))
            #expect(bounce.text.contains("Status: 5.1.10"))
            #expect(bounce.text.contains("Final-Recipient: rfc822; carol@nx.test"))
            #expect(bounce.text.contains("Status: 5.1.2"))
            // A DNS answer is the relay's own finding: no server is named, no reply is made up.
            #expect(!bounce.text.contains("Remote-MTA"))
            #expect(!bounce.text.contains("Diagnostic-Code: smtp;"))
        }
    }

    /// Two domains refuse their recipients with 550 in one round, each at its own server: one DSN lists both.
    @Test func twoDomainsFailingInOneRoundMakeOneDSN() async throws {
        let port = try Self.freePort()
        var script = FakeSMTPServer.Script()
        script.recipientReply = { address, _ in "550 5.1.1 <\(address)>: User unknown" }
        let first = try await FakeSMTPServer(host: "127.0.0.15", port: port, script: script)
        let second = try await FakeSMTPServer(host: "127.0.0.16", port: port, script: script)
        let senderMX = try await FakeSMTPServer(host: "127.0.0.17", port: port)
        defer { first.stop(); second.stop(); senderMX.stop() }
        let dns = try DNSTestServer(records: [
            .mx(domain: "one.test", preference: 10, exchange: "mx.one.test"), .a(host: "mx.one.test", address: "127.0.0.15"),
            .mx(domain: "two.test", preference: 10, exchange: "mx.two.test"), .a(host: "mx.two.test", address: "127.0.0.16"),
            .mx(domain: "sender.test", preference: 10, exchange: "mx.sender.test"), .a(host: "mx.sender.test", address: "127.0.0.17"),
        ])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["a@one.test", "b@two.test"])
            try await harness.waitUntil("the bounce") { senderMX.messages.count >= 1 }
            try await harness.waitUntil("the message to leave the queue") { try harness.store.message(queueID: id) == nil }
            try await harness.waitUntil("the bounce to leave the queue") { try harness.store.messageCount() == 0 }
            #expect(senderMX.messages.count == 1, "one DSN for the message, not one per domain")
            let bounce = try #require(senderMX.messages.first).text
            #expect(bounce.contains("Final-Recipient: rfc822; a@one.test"))
            #expect(bounce.contains("Diagnostic-Code: smtp; 550 5.1.1 <a@one.test>: User unknown"))
            #expect(bounce.contains("Remote-MTA: dns; mx.one.test"))
            #expect(bounce.contains("Final-Recipient: rfc822; b@two.test"))
            #expect(bounce.contains("Diagnostic-Code: smtp; 550 5.1.1 <b@two.test>: User unknown"))
            #expect(bounce.contains("Remote-MTA: dns; mx.two.test"))
            let pending = try await harness.store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM pending_notice") }
            #expect(pending == 0)
        }
    }

    @Test func retriesA451AndDeliversLater() async throws {
        let port = try Self.freePort()
        var script = FakeSMTPServer.Script()
        script.recipientReply = { _, previous in previous == 0 ? "451 4.7.1 Greylisted, try again" : "250 2.1.5 Ok" }
        let server = try await FakeSMTPServer(host: "127.0.0.6", port: port, script: script)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.mx(domain: "grey.test", preference: 10, exchange: "mx.grey.test"), .a(host: "mx.grey.test", address: "127.0.0.6")])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["bob@grey.test"])
            try await harness.waitUntil("the deferral") {
                try harness.store.message(queueID: id)?.recipients.first?.state == "deferred"
            }
            let deferred = try #require(try harness.store.message(queueID: id)?.recipients.first)
            #expect(deferred.attempts == 1)
            #expect(deferred.lastReply == "451 4.7.1 Greylisted, try again")
            #expect(deferred.lastRelay == "mx.grey.test[127.0.0.6]:\(port)")
            #expect(server.messages.isEmpty)
            // The retry is due within `retry_max` (2 s here).
            await harness.advance(by: .seconds(2))
            try await harness.waitUntil("delivery on retry") { server.messages.count == 1 }
            try await harness.waitUntil("the message to leave the queue") { try harness.store.message(queueID: id) == nil }
        }
    }

    @Test func oneRefusedRecipientAmongThreeIsBouncedAlone() async throws {
        let port = try Self.freePort()
        var script = FakeSMTPServer.Script()
        script.recipientReply = { address, _ in address.hasPrefix("nobody") ? "550 5.1.1 <\(address)>: User unknown" : "250 2.1.5 Ok" }
        let server = try await FakeSMTPServer(host: "127.0.0.7", port: port, script: script)
        let senderMX = try await FakeSMTPServer(host: "127.0.0.8", port: port)
        defer { server.stop(); senderMX.stop() }
        let dns = try DNSTestServer(records: [
            .mx(domain: "three.test", preference: 10, exchange: "mx.three.test"), .a(host: "mx.three.test", address: "127.0.0.7"),
            .mx(domain: "sender.test", preference: 10, exchange: "mx.sender.test"), .a(host: "mx.sender.test", address: "127.0.0.8"),
        ])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            try await harness.enqueue(from: "alice@sender.test", to: ["a@three.test", "nobody@three.test", "c@three.test"])
            try await harness.waitUntil("delivery and bounce") { server.messages.count == 1 && senderMX.messages.count == 1 }
            #expect(server.messages[0].recipients == ["a@three.test", "c@three.test"])
            let bounce = senderMX.messages[0].text
            #expect(bounce.contains("Final-Recipient: rfc822; nobody@three.test"))
            #expect(bounce.contains("Diagnostic-Code: smtp; 550 5.1.1 <nobody@three.test>: User unknown"))
            #expect(bounce.contains("Remote-MTA: dns; mx.three.test"))
            #expect(!bounce.contains("Final-Recipient: rfc822; a@three.test"))
        }
    }

    @Test func followsTheSmarthostAndConfiguredRoutes() async throws {
        let port = try Self.freePort()
        let smarthost = try await FakeSMTPServer(host: "127.0.0.9", port: 0)
        let routed = try await FakeSMTPServer(host: "127.0.0.10", port: 0)
        defer { smarthost.stop(); routed.stop() }
        let dns = try DNSTestServer(records: [.a(host: "smarthost.test", address: "127.0.0.9")])
        try await DeliveryHarness.run(dns: dns, mxPort: port, configure: { configuration in
            configuration.delivery.smarthost = PetrelConfiguration.HostPort(host: "smarthost.test", port: smarthost.port)
            configuration.routes["routed.test"] = PetrelConfiguration.HostPort(host: "127.0.0.10", port: routed.port)
        }) { harness in
            try await harness.enqueue(from: "alice@sender.test", to: ["x@anywhere.test", "y@routed.test"])
            try await harness.waitUntil("both deliveries") { smarthost.messages.count == 1 && routed.messages.count == 1 }
            #expect(smarthost.messages[0].recipients == ["x@anywhere.test"])
            #expect(routed.messages[0].recipients == ["y@routed.test"])
        }
    }

    @Test func expiresAndBouncesWith447() async throws {
        let port = try Self.freePort()
        var script = FakeSMTPServer.Script()
        script.recipientReply = { _, _ in "451 4.3.0 Temporary trouble" }
        let server = try await FakeSMTPServer(host: "127.0.0.11", port: port, script: script)
        let senderMX = try await FakeSMTPServer(host: "127.0.0.12", port: port)
        defer { server.stop(); senderMX.stop() }
        let dns = try DNSTestServer(records: [
            .mx(domain: "down.test", preference: 10, exchange: "mx.down.test"), .a(host: "mx.down.test", address: "127.0.0.11"),
            .mx(domain: "sender.test", preference: 10, exchange: "mx.sender.test"), .a(host: "mx.sender.test", address: "127.0.0.12"),
        ])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["bob@down.test"]) { envelope in
                envelope.recipients[0].parameters.originalRecipient = "rfc822;Bob+40down.test"
            }
            try await harness.waitUntil("the deferral") { try harness.store.message(queueID: id)?.recipients.first?.state == "deferred" }
            #expect(senderMX.messages.isEmpty)
            // Past the message's lifetime in the queue: it expires at its next attempt, due by then.
            await harness.advance(by: .seconds(DeliveryHarness.queueLifetime + 1))
            try await harness.waitUntil("the expiry bounce") { senderMX.messages.count == 1 }
            let bounce = senderMX.messages[0]
            #expect(bounce.mailFrom == "")
            // The relay gives up: a permanent status (RFC 3463 X.4.7), the server's last reply as the diagnostic.
            #expect(bounce.text.contains("Status: 5.4.7"))
            #expect(bounce.text.contains("Diagnostic-Code: smtp; 451 4.3.0 Temporary trouble"))
            #expect(bounce.text.contains("Remote-MTA: dns; mx.down.test"))
            #expect(bounce.text.contains("Action: failed"))
            #expect(bounce.text.contains("Original-Recipient: rfc822; Bob@down.test"))
            #expect(bounce.text.contains("451 4.3.0 Temporary trouble"))
            try await harness.waitUntil("the message to leave the queue") { try harness.store.message(queueID: id) == nil }
        }
    }

    /// Nothing listens: the refused connection is the relay's own error, stored and reported as such, never
    /// as a reply of the host that said nothing.
    @Test func aRefusedConnectionIsALocalErrorInTheQueueAndTheDSN() async throws {
        let port = try Self.freePort()
        let senderMX = try await FakeSMTPServer(host: "127.0.0.19", port: port)
        defer { senderMX.stop() }
        let dns = try DNSTestServer(records: [
            .mx(domain: "refusing.test", preference: 10, exchange: "mx.refusing.test"), .a(host: "mx.refusing.test", address: "127.0.0.18"),
            .mx(domain: "sender.test", preference: 10, exchange: "mx.sender.test"), .a(host: "mx.sender.test", address: "127.0.0.19"),
        ])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["bob@refusing.test"])
            try await harness.waitUntil("the deferral") { try harness.store.message(queueID: id)?.recipients.first?.state == "deferred" }
            let deferred = try #require(try harness.store.message(queueID: id)?.recipients.first)
            #expect(deferred.lastReply == nil)
            #expect(deferred.lastRelay == nil)
            let error = try #require(deferred.lastError)
            #expect(error.contains("mx.refusing.test[127.0.0.18]:\(port)") && error.lowercased().contains("refused"), "\(error)")
            #expect(senderMX.messages.isEmpty)
            await harness.advance(by: .seconds(DeliveryHarness.queueLifetime + 1))
            try await harness.waitUntil("the expiry bounce") { senderMX.messages.count == 1 }
            let bounce = senderMX.messages[0].text
            #expect(bounce.contains("Action: failed"))
            #expect(bounce.contains("Status: 5.4.7"))
            #expect(bounce.contains("Diagnostic-Code: X-Petrel; connect to mx.refusing.test[127.0.0.18]:\(port)"))
            #expect(!bounce.contains("Remote-MTA"))
            #expect(!bounce.contains("smtp; 451"))
        }
    }

    @Test func neverBouncesANullSenderMessage() async throws {
        let port = try Self.freePort()
        var script = FakeSMTPServer.Script()
        script.recipientReply = { _, _ in "550 5.1.1 No such user" }
        let server = try await FakeSMTPServer(host: "127.0.0.13", port: port, script: script)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.mx(domain: "gone.test", preference: 10, exchange: "mx.gone.test"), .a(host: "mx.gone.test", address: "127.0.0.13")])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let id = try await harness.enqueue(from: nil, to: ["bob@gone.test"])
            try await harness.waitUntil("the attempt") { server.commands.contains { $0.hasPrefix("RCPT") } }
            try await harness.waitUntil("the message to leave the queue") { try harness.store.message(queueID: id) == nil }
            #expect(try harness.store.messageCount() == 0)  // no bounce was queued
            #expect(server.commands.contains("MAIL FROM:<> SIZE=\(60 + 0)") || server.commands.contains { $0.hasPrefix("MAIL FROM:<>") })
        }
    }

    /// SIGTERM while the next hop is answering the final dot: delivery waits for the `250`, and its result
    /// is written before the service group ends (the committer stops after the scheduler), so the message is
    /// gone from the queue and a restart would not send it again.
    @Test func aReplyThatArrivesDuringShutdownIsRecorded() async throws {
        let port = try Self.freePort()
        var script = FakeSMTPServer.Script()
        script.dataReplyDelay = .milliseconds(500)
        let server = try await FakeSMTPServer(host: "127.0.0.20", port: port, script: script)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.a(host: "slow.test", address: "127.0.0.20")])
        let queueID = NIOLockedValueBox("")
        try await DeliveryHarness.run(dns: dns, mxPort: port, afterShutdown: { harness in
            let message = try harness.store.message(queueID: queueID.withLockedValue { $0 })
            #expect(message == nil, "the result was written before the service group ended")
        }) { harness in
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["bob@slow.test"])
            queueID.withLockedValue { $0 = id }
            await server.receivedMessages.wait(after: 0)  // the final dot; the 250 is on its way
            await harness.serviceGroup.triggerGracefulShutdown()
        }
        #expect(server.messages.count == 1)
    }

    @Test func passesDSNParametersOnAndReusesConnections() async throws {
        let port = try Self.freePort()
        let server = try await FakeSMTPServer(host: "127.0.0.14", port: port)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.mx(domain: "dsn.test", preference: 10, exchange: "mx.dsn.test"), .a(host: "mx.dsn.test", address: "127.0.0.14")])
        try await DeliveryHarness.run(dns: dns, mxPort: port, configure: { $0.delivery.workers = 1 }) { harness in
            try await harness.enqueue(from: "alice@sender.test", to: ["bob@dsn.test"]) { envelope in
                envelope.parameters.dsnReturn = .headers
                envelope.parameters.dsnEnvelopeID = "ENV+2B1"
                envelope.recipients[0].parameters.notify = [.success, .failure]
                envelope.recipients[0].parameters.originalRecipient = "rfc822;bob@dsn.test"
            }
            for _ in 0..<4 {
                try await harness.enqueue(from: "alice@sender.test", to: ["carol@dsn.test"])
            }
            try await harness.waitUntil("five deliveries") { server.messages.count == 5 }
            #expect(server.commands.contains { $0.hasPrefix("MAIL FROM:<alice@sender.test> SIZE=") && $0.hasSuffix(" RET=HDRS ENVID=ENV+2B1") })
            #expect(server.commands.contains("RCPT TO:<bob@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@dsn.test"))
            // One worker, one destination: the connection was reused.
            #expect(server.connections < 5)
        }
    }
}
