#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The text of one large message, written to its own file as it streams in so that a session's memory
/// stays bounded. ``finish()`` fsyncs the file and its directory: only then may the queue row that names
/// it be committed. The blocking calls run on NIO's thread pool, never on an event loop.
final class SpoolFile: Sendable {
    struct IOError: Error, CustomStringConvertible {
        var operation: String
        var errno: Int32
        var description: String { "\(operation): \(String(cString: strerror(errno)))" }
    }

    let directory: String
    let name: String
    private let descriptor: Int32
    private let threadPool: NIOThreadPool
    private let isClosed = NIOLockedValueBox(false)

    var path: String { "\(directory)/\(name)" }

    private init(directory: String, name: String, descriptor: Int32, threadPool: NIOThreadPool) {
        self.directory = directory
        self.name = name
        self.descriptor = descriptor
        self.threadPool = threadPool
    }

    static func create(directory: String, name: String, threadPool: NIOThreadPool = .singleton) async throws -> SpoolFile {
        let path = "\(directory)/\(name)"
        let descriptor = try await threadPool.runIfActive {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw IOError(operation: "open \(path)", errno: errno) }
            return fd
        }
        return SpoolFile(directory: directory, name: name, descriptor: descriptor, threadPool: threadPool)
    }

    func write(_ buffer: ByteBuffer) async throws {
        let descriptor = self.descriptor
        try await threadPool.runIfActive {
            try buffer.withUnsafeReadableBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw IOError(operation: "write spool file", errno: errno)
                    }
                    offset += written
                }
            }
        }
    }

    /// Makes the file durable: fsync it, close it, fsync the directory that names it.
    func finish() async throws {
        let descriptor = self.descriptor
        let directory = self.directory
        try await threadPool.runIfActive {
            defer { self.closeOnce() }
            guard fsync(descriptor) == 0 else { throw IOError(operation: "fsync spool file", errno: errno) }
            let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard directoryDescriptor >= 0 else { throw IOError(operation: "open spool directory", errno: errno) }
            defer { close(directoryDescriptor) }
            guard fsync(directoryDescriptor) == 0 else { throw IOError(operation: "fsync spool directory", errno: errno) }
        }
    }

    /// Closes and removes the file of a message that was not accepted.
    func discard() async {
        let path = self.path
        try? await threadPool.runIfActive {
            self.closeOnce()
            unlink(path)
        }
    }

    private func closeOnce() {
        let wasClosed = isClosed.withLockedValue { isClosed in
            defer { isClosed = true }
            return isClosed
        }
        if !wasClosed { close(descriptor) }
    }
}
