import Foundation
import NIOCore
import Testing
@testable import InboundServer

/// A spool file is created new, written whole in pieces, and made durable or removed.
struct SpoolFileTests {
    static func withDirectory(_ body: (String) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "petrel-spoolfile-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await body(directory)
    }

    @Test func writesItsPiecesInOrderAndOnlyForItsOwner() async throws {
        try await Self.withDirectory { directory in
            let file = try await SpoolFile.create(directory: directory, name: "Q1")
            let pieces = (0..<5).map { index in ByteBuffer(bytes: [UInt8](repeating: UInt8(index), count: 70_000 + index)) }
            for piece in pieces { try await file.write(piece) }
            try await file.finish()
            let written = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/Q1"))
            #expect(Array(written) == pieces.flatMap { Array($0.readableBytesView) })
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(directory)/Q1")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        }
    }

    /// `O_EXCL`: a queue id's file is never written over.
    @Test func neverReplacesAnExistingFile() async throws {
        try await Self.withDirectory { directory in
            try Data("kept".utf8).write(to: URL(fileURLWithPath: "\(directory)/Q2"))
            await #expect(throws: (any Error).self) {
                _ = try await SpoolFile.create(directory: directory, name: "Q2")
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/Q2")) == Data("kept".utf8))
        }
    }

    @Test func discardRemovesTheFile() async throws {
        try await Self.withDirectory { directory in
            let file = try await SpoolFile.create(directory: directory, name: "Q3")
            try await file.write(ByteBuffer(string: "text"))
            await file.discard()
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/Q3"))
        }
    }

    /// NIO stops the process when an open handle is dropped: a spool file given up without `finish()` or
    /// `discard()` closes its descriptor itself.
    @Test func aSpoolFileDroppedOpenClosesItsDescriptor() async throws {
        try await Self.withDirectory { directory in
            var file: SpoolFile? = try await SpoolFile.create(directory: directory, name: "Q4")
            try await file!.write(ByteBuffer(string: "text"))
            file = nil
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/Q4")) == Data("text".utf8))
        }
    }
}
