import NIOConcurrencyHelpers
import NIOCore
import NIOFileSystem

/// The text of one large message, written to its own file as it streams in so that a session's memory
/// stays bounded. ``finish()`` fsyncs the file and its directory: only then may the queue row that names
/// it be committed. Every call goes through NIO's file system (`FileSystem.shared`), whose blocking
/// system calls run on NIO's thread pool, never on an event loop.
final class SpoolFile: Sendable {
    let directory: String
    let name: String
    private let handle: WriteFileHandle
    private let fileSystem: FileSystem
    /// Where the next piece goes: the octets written so far.
    private let size = NIOLockedValueBox<Int64>(0)

    var path: String { "\(directory)/\(name)" }

    private init(directory: String, name: String, handle: WriteFileHandle, fileSystem: FileSystem) {
        self.directory = directory
        self.name = name
        self.handle = handle
        self.fileSystem = fileSystem
    }

    /// A safety net: NIO stops the process when a handle is dropped open, so a spool file given up
    /// without ``finish()`` or ``discard()`` still has its descriptor closed here.
    deinit {
        if let descriptor = try? handle.detachUnsafeFileDescriptor() {
            try? descriptor.close()
        }
    }

    /// Creates the file (`O_CREAT | O_EXCL`, mode 0600). It appears in the directory at once rather than at
    /// close (no transactional creation), so a crash leaves an unreferenced file for start-up to remove.
    static func create(directory: String, name: String, fileSystem: FileSystem = .shared) async throws -> SpoolFile {
        let options = OpenOptions.Write(
            existingFile: .none,
            newFile: OpenOptions.NewFile(permissions: .ownerReadWrite, transactionalCreation: false),
            closeOnExec: true
        )
        let handle = try await fileSystem.openFile(forWritingAt: FilePath("\(directory)/\(name)"), options: options)
        return SpoolFile(directory: directory, name: name, handle: handle, fileSystem: fileSystem)
    }

    /// Appends `buffer`, whole (NIO writes until every octet is written, retrying `EINTR`).
    func write(_ buffer: ByteBuffer) async throws {
        let offset = size.withLockedValue { $0 }
        try await handle.write(contentsOf: buffer.readableBytesView, toAbsoluteOffset: offset)
        size.withLockedValue { $0 = offset + Int64(buffer.readableBytes) }
    }

    /// Makes the file durable: fsync it, close it, fsync the directory that names it. The directory is
    /// opened read-only through NIO (`withDirectoryHandle`) and its handle's `synchronize()` is `fsync(2)`
    /// on the directory's descriptor, which makes the new entry durable.
    func finish() async throws {
        do {
            try await handle.synchronize()
        } catch {
            try? await handle.close()
            throw error
        }
        try await handle.close()
        try await fileSystem.withDirectoryHandle(
            atPath: FilePath(directory), options: OpenOptions.Directory(closeOnExec: true)
        ) { directory in
            try await directory.synchronize()
        }
    }

    /// Closes and removes the file of a message that was not accepted.
    func discard() async {
        try? await handle.close()
        _ = try? await fileSystem.removeItem(at: FilePath(path), recursively: false)
    }
}
