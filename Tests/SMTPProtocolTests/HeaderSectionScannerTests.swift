import NIOCore
import Testing
@testable import SMTPProtocol

struct HeaderSectionScannerTests {
    @Test func findsTraceFieldsInTheHeaderSectionOnly() {
        let text = "Received: a\r\nreceived: b\r\n\tcontinued\r\nDATE: now\r\nSubject: x\r\n\r\nReceived: in body\r\nMessage-ID: <no>\r\n"
        for pieces in Fragmentation.all(Array(text.utf8)) {
            var scanner = HeaderSectionScanner()
            for piece in pieces { scanner.scan(piece) }
            #expect(scanner.receivedCount == 2)
            #expect(scanner.hasDate)
            #expect(!scanner.hasMessageID)
            #expect(scanner.isFinished)
        }
    }

    @Test func seesMessageID() {
        var scanner = HeaderSectionScanner()
        scanner.scan(ByteBuffer(string: "Message-Id: <a@b>\r\n\r\n"))
        #expect(scanner.hasMessageID)
        #expect(!scanner.hasDate)
    }

    @Test func endsLinesAtCRLFOnlyAndMeasuresTheSection() {
        let text = "Received: a\r\nX: 1\n\nReceived: b\r\r\n\r\nbody\r\n"
        for pieces in Fragmentation.all(Array(text.utf8)) {
            var scanner = HeaderSectionScanner()
            for piece in pieces { scanner.scan(piece) }
            #expect(scanner.receivedCount == 1)
            #expect(scanner.isFinished)
            #expect(scanner.length == text.utf8.count - "body\r\n".utf8.count)
        }
    }
}
