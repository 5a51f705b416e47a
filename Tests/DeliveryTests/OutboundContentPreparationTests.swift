import Foundation
import MailQueue
import NIOCore
import SMTPProtocol
import Testing
@testable import Delivery

/// What each hop gets, decided without a network: the text as stored (no copy) when the hop can take it,
/// a conversion made once, or a refusal that another hop may not give.
struct OutboundContentPreparationTests {
    static let with8Bit = ServerCapabilities(ehloReply: SMTPReply(250, nil, ["mx.test", "8BITMIME"]))
    static let without8Bit = ServerCapabilities(ehloReply: SMTPReply(250, nil, ["mx.test"]))
    static let trace = ByteBuffer(string: "Received: by relay.test\r\n")
    static let eightBitMIME = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + String(repeating: "Viele Grüße aus Köln und Zürich, bis bald.\r\n", count: 8000)

    static func transaction(size: Int) -> OutboundTransaction {
        OutboundTransaction(reversePath: "a@sender.test", parameters: MailParameters(),
                            recipients: [OutboundRecipient(address: "b@mx.test")], size: size)
    }

    /// A spool file of `text` after the trace header; removed by the caller.
    static func spooled(_ text: String) throws -> (StoredContent, path: String, size: Int) {
        let path = NSTemporaryDirectory() + "petrel-spool-" + UUID().uuidString
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return (.spooled(traceHeaders: trace, path: path), path, trace.readableBytes + text.utf8.count)
    }

    @Test func aHopThatCanTakeTheTextGetsItAsStored() async throws {
        let (content, path, size) = try Self.spooled(Self.eightBitMIME)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outbound = OutboundContent(transaction: Self.transaction(size: size), content: content)
        guard case .send(let transaction, let sent) = try await outbound.prepare(for: Self.with8Bit) else {
            Issue.record("expected the text as stored")
            return
        }
        #expect(sent == content)
        #expect(transaction.size == size)
        #expect(transaction.parameters.body == .eightBitMIME)
    }

    @Test func aSpooledTextIsConvertedWholeForAHopWithout8BITMIME() async throws {
        let (content, path, size) = try Self.spooled(Self.eightBitMIME)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outbound = OutboundContent(transaction: Self.transaction(size: size), content: content)
        guard case .send(let transaction, .inline(let text)) = try await outbound.prepare(for: Self.without8Bit) else {
            Issue.record("expected a converted text")
            return
        }
        #expect(transaction.size == text.readableBytes)
        #expect(text.readableBytesView.allSatisfy { $0 < 0x80 })
        #expect(String(buffer: text).hasPrefix("Received: by relay.test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nViele Gr=C3=BC=C3=9Fe"))
        // The file goes once more: the spool file may be gone, the conversion is kept.
        try FileManager.default.removeItem(atPath: path)
        guard case .send(_, .inline(let again)) = try await outbound.prepare(for: Self.without8Bit) else {
            Issue.record("expected the same converted text")
            return
        }
        #expect(again == text)
    }

    /// Over the bound on what is converted in memory: refused with 5.6.3 for this hop, never sent in part.
    @Test func aTextOverTheConversionLimitIsRefused() async throws {
        let (content, path, size) = try Self.spooled(Self.eightBitMIME)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outbound = OutboundContent(transaction: Self.transaction(size: size), content: content, conversionLimit: 1000)
        let preparation = try await outbound.prepare(for: Self.without8Bit)
        guard case .refuse(let reply) = preparation else {
            Issue.record("expected a refusal, got \(preparation)")
            return
        }
        #expect(reply == MessageRequirements.conversionRefusal(.tooLarge(limit: 1000)))
    }
}
