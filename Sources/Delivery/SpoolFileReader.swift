#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import SMTPProtocol

/// Reads a spooled message's text in pieces on NIO's thread pool, for sending (RFC 5321 §4.5.2) or for
/// conversion. A spool file is only ever sent whole: a failed `read(2)` is an error, not the end of the
/// file, and the file must hold exactly the octets the queue recorded. Otherwise the client would send the
/// final dot after a truncated text, the next hop would accept it, and the queue would delete the
/// original (RFC 5321 §6.1: a `250` to the dot is a promise about the whole message).
struct SpoolFileReader: Sendable {
    /// One `read(2)`: the octets read, `0` at end of file, or `-errno`.
    typealias Read = @Sendable (_ descriptor: Int32, _ into: UnsafeMutableRawBufferPointer) -> Int

    static let chunkSize = 64 * 1024

    var read: Read = { descriptor, bytes in
        let count = Glibc.read(descriptor, bytes.baseAddress, bytes.count)
        return count >= 0 ? count : -Int(errno)
    }

    /// Why a spool file could not be read whole; the attempt is deferred with ``reply``.
    struct Failure: Error, Sendable, CustomStringConvertible {
        var description: String
        /// A local problem that may pass (RFC 3463 §3.4: `4.3.0` other mail system status).
        var reply: SMTPReply { SMTPReply(451, EnhancedStatusCode(4, 3, 0), "cannot read the spooled message: \(description)") }
    }

    /// Calls `body` with each piece of the file at `path` in order, and returns only when all
    /// `expectedSize` octets were read and the file ended there. Throws ``Failure`` when the file cannot be
    /// opened, a read fails (`EINTR` is retried), or the file is shorter or longer than expected; whatever
    /// `body` throws is passed on.
    func forEachChunk(path: String, expectedSize: Int, _ body: (ByteBuffer) async throws -> Void) async throws {
        let (descriptor, openError) = try await NIOThreadPool.singleton.runIfActive { () -> (Int32, Int32) in
            while true {
                let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
                if descriptor >= 0 || errno != EINTR { return (descriptor, errno) }
            }
        }
        guard descriptor >= 0 else { throw Failure(description: "open: \(String(cString: strerror(openError)))") }
        defer { _ = Glibc.close(descriptor) }
        var total = 0
        while true {
            let read = self.read
            let chunk = try await NIOThreadPool.singleton.runIfActive { () throws(Failure) -> ByteBuffer in
                var buffer = ByteBuffer()
                var failure: Int32 = 0
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.chunkSize) { bytes in
                    while true {
                        let count = read(descriptor, bytes)
                        if count >= 0 { return count }
                        if count == -Int(EINTR) { continue }
                        failure = Int32(-count)
                        return 0
                    }
                }
                guard failure == 0 else { throw Failure(description: "read: \(String(cString: strerror(failure)))") }
                return buffer
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
