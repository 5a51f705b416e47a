#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOConcurrencyHelpers
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

    @Test func retriesEINTR() async throws {
        let (path, bytes) = try Self.file(2 * SpoolFileReader.chunkSize)
        defer { unlink(path) }
        let calls = NIOLockedValueBox(0)
        var reader = SpoolFileReader()
        reader.read = { descriptor, buffer in
            let call = calls.withLockedValue { $0 += 1; return $0 }
            if call % 2 == 1 { return -Int(EINTR) }
            return Glibc.read(descriptor, buffer.baseAddress, buffer.count)
        }
        #expect(try await Self.readAll(reader, path: path, expectedSize: bytes.count) == bytes)
        #expect(calls.withLockedValue { $0 } > 2)
    }

    /// Two pieces arrive, then `EIO`: the caller has seen only those and gets an error, never an end.
    @Test(arguments: [EIO, EISDIR, EBADF])
    func aFailedReadIsAnErrorNotTheEnd(errorNumber: Int32) async throws {
        let (path, bytes) = try Self.file(4 * SpoolFileReader.chunkSize)
        defer { unlink(path) }
        let calls = NIOLockedValueBox(0)
        var reader = SpoolFileReader()
        reader.read = { descriptor, buffer in
            let call = calls.withLockedValue { $0 += 1; return $0 }
            return call > 2 ? -Int(errorNumber) : Glibc.read(descriptor, buffer.baseAddress, buffer.count)
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

    @Test func aMissingFileIsAnError() async throws {
        await #expect(throws: SpoolFileReader.Failure.self) {
            _ = try await Self.readAll(SpoolFileReader(), path: "/nonexistent/petrel-spool", expectedSize: 1)
        }
    }
}
