#if canImport(Glibc)
import Glibc
#endif
import DNSResolver
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOFileSystem
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

    /// A spool file that cannot be read whole (shorter than stored, or not a file at all, so `pread(2)`
    /// fails with `EISDIR`): the final dot is never sent, and the recipient is deferred with a `4xx`.
    @Test(arguments: [DeliveryHarness.Storage.spooledTruncated, .spooledAsDirectory])
    func anUnreadableSpoolFileIsNeverSentAsComplete(storage: DeliveryHarness.Storage) async throws {
        let port = try Self.freePort()
        let server = try await FakeSMTPServer(host: "127.0.0.40", port: port)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.a(host: "spool.test", address: "127.0.0.40")])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let text = "Subject: big\r\n\r\n" + String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", count: 8192)
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["bob@spool.test"], text: text, storage: storage)
            try await harness.waitUntil("the deferral") {
                try harness.store.message(queueID: id)?.recipients.first?.state == "deferred"
            }
            let recipient = try #require(try harness.store.message(queueID: id)?.recipients.first)
            // The relay's own fault, not a reply: a local error naming the host it was sending to.
            #expect(recipient.lastReply == nil)
            let error = try #require(recipient.lastError)
            #expect(error.contains("127.0.0.40") && error.contains("cannot read the spooled message"), "\(error)")
            #expect(recipient.state == "deferred")
            #expect(server.messages.isEmpty)
        }
    }

    /// The read fails while the text is being sent (after the scan read it whole): the connection drops
    /// before the final dot, and the failure is local, so no other host is tried.
    @Test(.timeLimit(.minutes(1))) func aReadErrorWhileSendingNeverEndsTheMessage() async throws {
        let server = try await FakeSMTPServer(host: "127.0.0.41", port: 0)
        defer { server.stop() }
        let text = String(repeating: "line of the spooled message\r\n", count: 10_000)
        let path = NSTemporaryDirectory() + "petrel-spool-" + UUID().uuidString
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let reads = NIOLockedValueBox(0)
        var spoolReader = SpoolFileReader()
        spoolReader.readChunk = { file, offset, length in
            if reads.withLockedValue({ $0 += 1; return $0 }) > 1 { throw Errno.ioError }
            return try await file.readChunk(fromAbsoluteOffset: offset, length: .bytes(length))
        }
        let tasks = ConnectionTasks()
        async let served: Void = tasks.run()
        let connection = try await OutboundConnection.open(hostName: "mx.test", address: server.host, port: server.port,
                                                           heloName: "relay.test", timeouts: ClientTimeouts(), spoolReader: spoolReader, in: tasks)
        let trace = ByteBuffer(string: "Received: by relay.test\r\n")
        let transaction = OutboundTransaction(reversePath: "a@sender.test", parameters: MailParameters(),
                                              recipients: [OutboundRecipient(address: "b@mx.test")], size: trace.readableBytes + text.utf8.count)
        do {
            _ = try await connection.send(transaction, content: .spooled(traceHeaders: trace, path: path))
            Issue.record("the send should have failed")
        } catch let failure as HostFailure {
            #expect(failure.isLocalFailure)
            #expect(failure.reply.code == 451)
            #expect(failure.reply.enhancedCode == EnhancedStatusCode(4, 3, 0))
        }
        connection.close()
        tasks.finish()
        await served
        // Everything the relay sent has been read once the server has seen the connection end.
        await server.endedConnections.wait(after: 0)
        #expect(server.commands.contains("DATA"))
        #expect(server.messages.isEmpty)
    }

    static let withoutEightBit = ["PIPELINING", "SIZE 100000000", "ENHANCEDSTATUSCODES", "DSN"]

    /// RFC 6152 §3: a hop with 8BITMIME gets 8-bit text as it is, with `BODY=8BITMIME` even when the client
    /// declared nothing.
    @Test func declaresBODY8BITMIMEForEightBitText() async throws {
        let port = try Self.freePort()
        let server = try await FakeSMTPServer(host: "127.0.0.49", port: port)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.a(host: "eight.test", address: "127.0.0.49")])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            try await harness.enqueue(from: "alice@sender.test", to: ["bob@eight.test"], text: "Subject: x\r\n\r\nGrüße\r\n")
            try await harness.waitUntil("the delivery") { server.messages.count == 1 }
            #expect(server.messages[0].text.hasSuffix("\r\n\r\nGrüße\r\n"))
            #expect(server.commands.contains { $0.hasPrefix("MAIL FROM:<alice@sender.test> SIZE=") && $0.hasSuffix(" BODY=8BITMIME") })
        }
    }

    /// RFC 6152 §3: a hop without 8BITMIME gets the 8-bit part quoted-printable, no `BODY=`, no 8-bit octet.
    @Test func convertsEightBitMIMEForAHopWithout8BITMIME() async throws {
        let port = try Self.freePort()
        var script = FakeSMTPServer.Script()
        script.extensions = Self.withoutEightBit
        let server = try await FakeSMTPServer(host: "127.0.0.42", port: port, script: script)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.a(host: "seven.test", address: "127.0.0.42")])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let text = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nSubject: x\r\n\r\nViele Grüße aus Köln und Zürich\r\n"
            try await harness.enqueue(from: "alice@sender.test", to: ["bob@seven.test"], text: text) { $0.parameters.body = .eightBitMIME }
            try await harness.waitUntil("the delivery") { server.messages.count == 1 }
            let received = server.messages[0].text
            #expect(received.utf8.allSatisfy { $0 < 0x80 })
            #expect(received.hasSuffix("Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nViele Gr=C3=BC=C3=9Fe aus K=C3=B6ln und Z=C3=BCrich\r\n"))
            #expect(server.commands.contains { $0.hasPrefix("MAIL FROM:<alice@sender.test> SIZE=") && !$0.contains("BODY=") })
        }
    }

    /// Not MIME, so it cannot be converted: the next MX, which offers 8BITMIME, gets it as it is; when no
    /// MX offers it, the sender gets a bounce with `5.6.3`.
    @Test func triesTheNextMXThenBouncesWhatCannotBeConverted() async throws {
        let port = try Self.freePort()
        var script = FakeSMTPServer.Script()
        script.extensions = Self.withoutEightBit
        let seven = try await FakeSMTPServer(host: "127.0.0.43", port: port, script: script)
        let eight = try await FakeSMTPServer(host: "127.0.0.44", port: port)
        let senderMX = try await FakeSMTPServer(host: "127.0.0.45", port: port)
        defer { seven.stop(); eight.stop(); senderMX.stop() }
        let dns = try DNSTestServer(records: [
            .mx(domain: "both.test", preference: 10, exchange: "seven.both.test"), .a(host: "seven.both.test", address: "127.0.0.43"),
            .mx(domain: "both.test", preference: 20, exchange: "eight.both.test"), .a(host: "eight.both.test", address: "127.0.0.44"),
            .mx(domain: "only7.test", preference: 10, exchange: "seven.both.test"),
            .mx(domain: "sender.test", preference: 10, exchange: "mx.sender.test"), .a(host: "mx.sender.test", address: "127.0.0.45"),
        ])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let text = "Subject: not MIME\r\n\r\nGrüße\r\n"
            try await harness.enqueue(from: "alice@sender.test", to: ["bob@both.test"], text: text)
            try await harness.waitUntil("delivery to the MX with 8BITMIME") { eight.messages.count == 1 }
            #expect(eight.messages[0].text.hasSuffix("\r\n\r\nGrüße\r\n"))
            #expect(seven.messages.isEmpty)
            let id = try await harness.enqueue(from: "alice@sender.test", to: ["carol@only7.test"], text: text)
            try await harness.waitUntil("the bounce") { senderMX.messages.count == 1 }
            #expect(senderMX.messages[0].text.contains("Status: 5.6.3"))
            #expect(senderMX.messages[0].text.contains("Final-Recipient: rfc822; carol@only7.test"))
            #expect(seven.messages.isEmpty)
            try await harness.waitUntil("the message to leave the queue") { try harness.store.message(queueID: id) == nil }
        }
    }

    /// RFC 6531 §3.4: a client that said SMTPUTF8 for all-ASCII mail: the hop without SMTPUTF8 gets it,
    /// without the parameter. One with a non-ASCII address bounces with `5.6.7`.
    @Test func sendsAllASCIIMailWithoutSMTPUTF8AndBouncesWhatNeedsIt() async throws {
        let port = try Self.freePort()
        let server = try await FakeSMTPServer(host: "127.0.0.46", port: port)
        let senderMX = try await FakeSMTPServer(host: "127.0.0.47", port: port)
        defer { server.stop(); senderMX.stop() }
        let dns = try DNSTestServer(records: [
            .a(host: "ascii.test", address: "127.0.0.46"),
            .mx(domain: "sender.test", preference: 10, exchange: "mx.sender.test"), .a(host: "mx.sender.test", address: "127.0.0.47"),
        ])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            try await harness.enqueue(from: "alice@sender.test", to: ["bob@ascii.test"]) { $0.parameters.isSMTPUTF8 = true }
            try await harness.waitUntil("the delivery") { server.messages.count == 1 }
            #expect(server.commands.contains { $0.hasPrefix("MAIL FROM:<alice@sender.test>") && !$0.contains("SMTPUTF8") })
            try await harness.enqueue(from: "alice@sender.test", to: ["jörg@ascii.test"]) { $0.parameters.isSMTPUTF8 = true }
            try await harness.waitUntil("the bounce") { senderMX.messages.count == 1 }
            #expect(senderMX.messages[0].text.contains("Status: 5.6.7"))
            #expect(server.messages.count == 1)
        }
    }

    /// RFC 5321 §4.5.3.1.6: a 100,000-octet body line goes out quoted-printable in lines within the limit,
    /// even to a hop with 8BITMIME, and decodes to the same line; a long header is folded.
    @Test func reencodesALongLineAndFoldsALongHeader() async throws {
        let port = try Self.freePort()
        let server = try await FakeSMTPServer(host: "127.0.0.48", port: port)
        defer { server.stop() }
        let dns = try DNSTestServer(records: [.a(host: "long.test", address: "127.0.0.48")])
        try await DeliveryHarness.run(dns: dns, mxPort: port) { harness in
            let line = String(repeating: "0123456789", count: 10_000)
            let subject = (0..<4000).map { "w\($0)" }.joined(separator: " ")
            let text = "MIME-Version: 1.0\r\nSubject: \(subject)\r\n\r\n\(line)\r\n"
            try await harness.enqueue(from: "alice@sender.test", to: ["bob@long.test"], text: text, storage: .spooled)
            try await harness.waitUntil("the delivery") { server.messages.count == 1 }
            let received = server.messages[0].text
            let lines = received.split(separator: "\r\n", omittingEmptySubsequences: false)
            #expect(lines.allSatisfy { $0.utf8.count <= 998 })
            #expect(received.contains("\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"))
            let body = try #require(received.split(separator: "\r\n\r\n", maxSplits: 1).last)
            #expect(body.replacingOccurrences(of: "=\r\n", with: "") == line + "\r\n")
            #expect(received.contains("Subject: w0 w1"))
            #expect(received.replacingOccurrences(of: "\r\n ", with: " ").contains("Subject: \(subject)\r\n"))
        }
    }
}
