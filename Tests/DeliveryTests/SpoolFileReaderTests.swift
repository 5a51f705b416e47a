#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOConcurrencyHelpers
import NIOFileSystem
import Testing
@testable import Delivery

/// A spool file is sent whole or not at all: a failed read is not the end of the file.
struct SpoolFileReaderTests {
    static func file(_ size: Int) throws -> (path: String, bytes: [UInt8]) {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let path = NSTemporaryDirectory() + "petrel-spool-" + UUID().uuidString
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (path, bytes)
    }

    static func readAll(_ reader: SpoolFileReader, path: String, expectedSize: Int) async throws -> [UInt8] {
        var got: [UInt8] = []
        try await reader.forEachChunk(path: path, expectedSize: expectedSize) { chunk in got += chunk.readableBytesView }
        return got
    }

    @Test func readsAWholeFileInPieces() async throws {
        let (path, bytes) = try Self.file(3 * SpoolFileReader.chunkSize + 17)
        defer { unlink(path) }
        #expect(try await Self.readAll(SpoolFileReader(), path: path, expectedSize: bytes.count) == bytes)
    }

    /// A read may return fewer octets than asked for (NIO's `pread(2)` retries `EINTR` itself, but a read
    /// cut short by a signal returns what it had): the next read starts where that one ended.
    @Test func aShortReadIsNotTheEnd() async throws {
        let (path, bytes) = try Self.file(2 * SpoolFileReader.chunkSize + 5)
        defer { unlink(path) }
        let calls = NIOLockedValueBox(0)
        var reader = SpoolFileReader()
        reader.readChunk = { file, offset, length in
            calls.withLockedValue { $0 += 1 }
            return try await file.readChunk(fromAbsoluteOffset: offset, length: .bytes(min(length, 1000)))
        }
        #expect(try await Self.readAll(reader, path: path, expectedSize: bytes.count) == bytes)
        #expect(calls.withLockedValue { $0 } == bytes.count / 1000 + 2)
    }

    /// Two pieces arrive, then `EIO`: the caller has seen only those and gets an error, never an end.
    @Test(arguments: [EIO, EISDIR, EBADF])
    func aFailedReadIsAnErrorNotTheEnd(errorNumber: Int32) async throws {
        let (path, bytes) = try Self.file(4 * SpoolFileReader.chunkSize)
        defer { unlink(path) }
        let calls = NIOLockedValueBox(0)
        var reader = SpoolFileReader()
        reader.readChunk = { file, offset, length in
            let call = calls.withLockedValue { $0 += 1; return $0 }
            if call > 2 { throw Errno(rawValue: errorNumber) }
            return try await file.readChunk(fromAbsoluteOffset: offset, length: .bytes(length))
        }
        var pieces = 0
        await #expect(throws: SpoolFileReader.Failure.self) {
            try await reader.forEachChunk(path: path, expectedSize: bytes.count) { _ in pieces += 1 }
        }
        #expect(pieces == 2)
    }

    @Test(arguments: [(stored: 1000, onDisk: 999), (stored: 1000, onDisk: 0), (stored: 1000, onDisk: 1001)])
    func aFileOfAnotherSizeThanStoredIsAnError(sizes: (stored: Int, onDisk: Int)) async throws {
        let (path, _) = try Self.file(sizes.onDisk)
        defer { unlink(path) }
        await #expect(throws: SpoolFileReader.Failure.self) {
            _ = try await Self.readAll(SpoolFileReader(), path: path, expectedSize: sizes.stored)
        }
    }

    /// No seam: NIO's own `pread(2)` on a directory fails with `EISDIR`.
    @Test func aDirectoryIsAnError() async throws {
        let path = NSTemporaryDirectory() + "petrel-spool-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        defer { rmdir(path) }
        await #expect(throws: SpoolFileReader.Failure.self) {
            _ = try await Self.readAll(SpoolFileReader(), path: path, expectedSize: 1)
        }
    }

    @Test func aMissingFileIsAnError() async throws {
        await #expect(throws: SpoolFileReader.Failure.self) {
            _ = try await Self.readAll(SpoolFileReader(), path: "/nonexistent/petrel-spool", expectedSize: 1)
        }
    }
}
