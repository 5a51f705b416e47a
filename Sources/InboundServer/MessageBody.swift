import MailQueue
import NIOCore
import SMTPProtocol

/// The text of the message being received, decoded and streamed: kept in memory while it is small, and
/// moved to a ``SpoolFile`` once it outgrows `inlineLimit`, so that a session never holds more than about
/// that much of a message, however large the message is.
struct MessageBody {
    /// Above this, the text goes to a spool file. Below it, it travels inline in the queue's transaction,
    /// where one fsync covers a whole batch of messages (see docs/ARCHITECTURE.md).
    static let inlineLimit = 256 * 1024
    /// Once spooling, text is written out in pieces of about this size.
    static let spoolChunk = 64 * 1024

    let queueID: String
    let spoolDirectory: String
    /// Stopped while the spool file is written: the client is not to blame for a slow disk.
    let readClock: ReadClock
    var decoder: DataDecoder
    var headers = HeaderSectionScanner()
    /// Decoded text not yet written to the spool file (all of it, while inline).
    var pending: ByteBuffer
    private(set) var spool: SpoolFile?

    init(queueID: String, spoolDirectory: String, readClock: ReadClock, decoder: DataDecoder, allocator: ByteBufferAllocator) {
        self.queueID = queueID
        self.spoolDirectory = spoolDirectory
        self.readClock = readClock
        self.decoder = decoder
        self.pending = allocator.buffer(capacity: 4096)
    }

    /// Decodes what `input` holds. Returns `true` at the end of data.
    /// Why the spool file could not be written (disk full, I/O error). The rest of the text is still read,
    /// to find its end, and the message is then refused with `452 4.3.1`.
    private(set) var storageError: (any Error)?

    mutating func consume(_ input: inout ByteBuffer) async throws -> Bool {
        let start = pending.writerIndex
        let isFinished = decoder.decode(&input, into: &pending)
        if !headers.isFinished, pending.writerIndex > start {
            headers.scan(pending.getSlice(at: start, length: pending.writerIndex - start)!)
        }
        if decoder.isDiscarding || storageError != nil {
            pending.clear()
        } else if spool != nil ? pending.readableBytes >= Self.spoolChunk : pending.readableBytes > Self.inlineLimit {
            do {
                let clock = readClock
                try await clock.stopped {
                    if spool == nil {
                        spool = try await SpoolFile.create(directory: spoolDirectory, name: queueID)
                    }
                    try await spool!.write(pending)
                }
            } catch {
                storageError = error
                await spool?.discard()
                spool = nil
            }
            pending.clear()
        }
        return isFinished
    }

    var summary: ServerSession.DataSummary {
        ServerSession.DataSummary(decoder: decoder, headers: headers)
    }

    /// Makes the text durable when it is spooled, and says where it is.
    mutating func finish() async throws -> IncomingMessage.Content {
        guard let spool else { return .inline(pending) }
        if pending.readableBytes > 0 {
            try await spool.write(pending)
            pending.clear()
        }
        try await spool.finish()
        return .spooled(fileName: spool.name)
    }

    /// The message was refused, or the connection ended: remove any spool file.
    mutating func discard() async {
        await spool?.discard()
        spool = nil
        pending.clear()
    }
}
