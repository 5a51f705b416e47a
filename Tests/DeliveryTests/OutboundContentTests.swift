import DNSResolver
import Foundation
import MailQueue
import PetrelConfig
import PetrelTestSupport
import SMTPProtocol
import Testing
@testable import Delivery

/// Faults on the way out (issue 10): what the relay sends must be the whole message, in a form the next
/// hop may accept (RFC 5321 §4.5.3.1.6, RFC 6152 §3, RFC 6531 §3.4).
@Suite(.serialized)
struct OutboundContentTests {
    static func freePort() throws -> Int { try DNSTestServer.freePort(ipv6: false) }

    /// A spool file that cannot be read whole (shorter than stored, or not a file at all, so `read(2)`
    /// fails with `EISDIR`): the final dot is never sent, and the recipient is deferred with a `4xx`.
    @Test(arguments: [DeliveryHarness.Storage.spooledTruncated, .spooledAsDirectory])
    func anUnreadableSpoolFileIsNeverSentAsComplete(storage: DeliveryHarness.Storage) async throws {
        let port = try Self.freePort()
        let server = try await FakeSMTPServer(host: "127.0.0.40", port: port)
        defer { Task { await server.stop() } }
        let dns = try DNSTestServer(records: [.a(host: "spool.test", address: "127.0.0.40")])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let text = "Subject: big\r\n\r\n" + String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", count: 8192)
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["bob@spool.test"], text: text, storage: storage)
            try await harness.waitUntil("the deferral") {
                try harness.store.message(queueID: id)?.recipients.first?.state == "deferred"
            }
            let recipient = try #require(try harness.store.message(queueID: id)?.recipients.first)
            #expect(recipient.lastReply?.hasPrefix("451 4.3.0 cannot read the spooled message") == true)
            #expect(server.commands.contains { $0.hasPrefix("DATA") })
            #expect(server.messages.isEmpty)
        }
    }
}
