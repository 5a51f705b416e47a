import MailQueue
import NIOCore
import SMTPProtocol

/// A job's text in the form each next hop may take (RFC 6152 §3, RFC 6531 §3.4, RFC 5321 §4.5.3.1.6).
/// The text is scanned once, on the first host that answers (``ContentScanner``: one fast pass, no copy),
/// and converted at most once for each form a hop needs (``MIMEConverter``). A 7-bit message with short
/// lines is sent as stored, not copied. The `BODY=` the client declared is stored with the message but not
/// trusted here: clients send 8-bit text without declaring it, and long lines need the scan anyway. A
/// spooled text is read once more for the scan (it also proves the file whole before a connection is used).
///
/// Conversion is done in memory, whole, so a message is never sent half converted: an inline text is at
/// most 256 KiB, and a spooled one is read into memory when it must be converted, up to
/// ``defaultConversionLimit``; a larger one is refused for this hop like one that cannot be converted (the
/// next hop may offer 8BITMIME; if none does, it bounces with `5.6.3`).
final class OutboundContent {
    let transaction: OutboundTransaction
    let content: StoredContent
    let spoolReader: SpoolFileReader
    private var requirements: MessageRequirements?
    private var conversions: [Bool: Result<ByteBuffer, MIMEConverter.Failure>] = [:]

    /// Spooled text is at least 256 KiB; the default `max_message_size` is 25 MiB.
    static let defaultConversionLimit = 64 * 1024 * 1024
    let conversionLimit: Int

    /// What one host gets.
    enum Preparation {
        case send(OutboundTransaction, StoredContent)
        /// This host cannot take the message (its capabilities, not a passing fault); another may.
        case refuse(SMTPReply)
    }

    init(transaction: OutboundTransaction, content: StoredContent, spoolReader: SpoolFileReader = SpoolFileReader(),
         conversionLimit: Int = OutboundContent.defaultConversionLimit) {
        self.transaction = transaction
        self.content = content
        self.spoolReader = spoolReader
        self.conversionLimit = conversionLimit
    }

    /// The transaction and text for a host that offered `capabilities`. Throws a local ``HostFailure``
    /// when a spool file cannot be read whole.
    func prepare(for capabilities: ServerCapabilities) async throws -> Preparation {
        var requirements: MessageRequirements
        if let scanned = self.requirements {
            requirements = scanned
        } else {
            requirements = try await scan()
        }
        var transaction = self.transaction
        transaction.needsSMTPUTF8 = requirements.needsSMTPUTF8
        if requirements.profile.hasEightBitBody {
            // RFC 6152 §3: 8-bit text goes with BODY=8BITMIME, whatever the client declared (to a hop without
            // 8BITMIME the text is converted, and the client session sends no BODY= there).
            transaction.parameters.body = .eightBitMIME
        }
        switch requirements.adaptation(to: capabilities) {
        case .none:
            return .send(transaction, content)
        case .refuse(let reply):
            return .refuse(reply)
        case .convert(let allowsEightBit):
            var conversion: Result<ByteBuffer, MIMEConverter.Failure>
            if let converted = conversions[allowsEightBit] {
                conversion = converted
            } else {
                conversion = try await convert(allowsEightBit: allowsEightBit)
                conversions[allowsEightBit] = conversion
            }
            switch conversion {
            case .success(let text):
                transaction.size = text.readableBytes
                return .send(transaction, .inline(text))
            case .failure(let failure):
                return .refuse(MessageRequirements.conversionRefusal(failure))
            }
        }
    }

    private func scan() async throws -> MessageRequirements {
        var scanner = ContentScanner()
        switch content {
        case .inline(let text):
            scanner.scan(text)
        case .spooled(let traceHeaders, let path):
            scanner.scan(traceHeaders)
            try await readSpool(path: path, traceHeaders: traceHeaders) { scanner.scan($0) }
        }
        let requirements = MessageRequirements(parameters: transaction.parameters,
                                               addresses: [transaction.reversePath] + transaction.recipients.map(\.address),
                                               profile: scanner.finish())
        self.requirements = requirements
        return requirements
    }

    private func convert(allowsEightBit: Bool) async throws -> Result<ByteBuffer, MIMEConverter.Failure> {
        var text: ByteBuffer
        switch content {
        case .inline(let inline):
            text = inline
        case .spooled(let traceHeaders, let path):
            guard transaction.size <= conversionLimit else {
                return .failure(.tooLarge(limit: conversionLimit))
            }
            text = ByteBuffer()
            text.reserveCapacity(transaction.size)
            text.writeImmutableBuffer(traceHeaders)
            try await readSpool(path: path, traceHeaders: traceHeaders) { chunk in text.writeImmutableBuffer(chunk) }
        }
        let converter = MIMEConverter(allowsEightBit: allowsEightBit)
        return Result { () throws(MIMEConverter.Failure) in try converter.convert(text) }
    }

    private func readSpool(path: String, traceHeaders: ByteBuffer, _ body: (ByteBuffer) async throws -> Void) async throws {
        do {
            try await spoolReader.forEachChunk(path: path, expectedSize: transaction.size - traceHeaders.readableBytes, body)
        } catch let failure as SpoolFileReader.Failure {
            throw HostFailure(failure.reply, isLocalFailure: true)
        }
    }
}
