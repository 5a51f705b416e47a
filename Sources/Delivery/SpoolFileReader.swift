import NIOCore
import NIOFileSystem
import SMTPProtocol

/// Reads a spooled message's text in pieces through NIO's file system (its blocking calls run on NIO's
/// thread pool), for sending (RFC 5321 §4.5.2) or for conversion. A spool file is only ever sent whole: a
/// failed read is an error, not the end of the file, and the file must hold exactly the octets the queue
/// recorded. Otherwise the client would send the final dot after a truncated text, the next hop would
/// accept it, and the queue would delete the original (RFC 5321 §6.1: a `250` to the dot is a promise about
/// the whole message).
struct SpoolFileReader: Sendable {
    /// One read of at most `length` octets at `offset`: fewer at the end of the file, none past it. NIO's
    /// `pread(2)` retries `EINTR` itself and throws any other error.
    typealias ReadChunk = @Sendable (_ file: ReadFileHandle, _ offset: Int64, _ length: Int64) async throws -> ByteBuffer

    static let chunkSize = 64 * 1024

    var fileSystem = FileSystem.shared
    var readChunk: ReadChunk = { file, offset, length in
        try await file.readChunk(fromAbsoluteOffset: offset, length: .bytes(length))
    }

    /// Why a spool file could not be read whole; the attempt is deferred with ``reply``.
    struct Failure: Error, Sendable, CustomStringConvertible {
        var description: String
        /// A local problem that may pass (RFC 3463 §3.4: `4.3.0` other mail system status).
        var reply: SMTPReply { SMTPReply(451, EnhancedStatusCode(4, 3, 0), "cannot read the spooled message: \(description)") }
    }

    /// Calls `body` with each piece of the file at `path` in order, and returns only when all
    /// `expectedSize` octets were read and the file ended there. Throws ``Failure`` when the file cannot be
    /// opened, a read fails, or the file is shorter or longer than expected; whatever `body` throws is
    /// passed on.
    func forEachChunk(path: String, expectedSize: Int, _ body: (ByteBuffer) async throws -> Void) async throws {
        let file: ReadFileHandle
        do {
            file = try await fileSystem.openFile(forReadingAt: FilePath(path), options: OpenOptions.Read(closeOnExec: true))
        } catch where !(error is CancellationError) {
            throw Failure(description: "open: \(error)")
        }
        do {
            try await forEachChunk(of: file, expectedSize: expectedSize, body)
        } catch {
            try? await file.close()
            throw error
        }
        try? await file.close()
    }

    private func forEachChunk(of file: ReadFileHandle, expectedSize: Int, _ body: (ByteBuffer) async throws -> Void) async throws {
        var total = 0
        while true {
            let chunk: ByteBuffer
            do {
                chunk = try await readChunk(file, Int64(total), Int64(Self.chunkSize))
            } catch where !(error is CancellationError) {
                throw Failure(description: "read: \(error)")
            }
            if chunk.readableBytes == 0 { break }
            total += chunk.readableBytes
            guard total <= expectedSize else {
                throw Failure(description: "the file is longer than the \(expectedSize) octets stored")
            }
            try await body(chunk)
        }
        guard total == expectedSize else {
            throw Failure(description: "the file holds \(total) of the \(expectedSize) octets stored")
        }
    }
}
