import Foundation
import Testing
@testable import Authentication

/// The users file (`name:hash:allowed-senders`, mode 0600) and the allowed-senders rule.
struct UsersFileTests {
    /// A folder of its own, removed at the end.
    final class Folder {
        let path = NSTemporaryDirectory() + "petrel-users-" + UUID().uuidString
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func file(_ name: String) -> String { path + "/" + name }
    }

    static let hash = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC"

    @Test func roundTrips() throws {
        let folder = Folder()
        let path = folder.file("sub/users")   // the folder is made when missing
        let file = UsersFile(users: [
            User(name: "app", passwordHash: try PasswordHash.make("one"), allowedSenders: ["app@example.com", "@Example.ORG"]),
            User(name: "any", passwordHash: Self.hash),
            User(name: "ünïcode.user@host", passwordHash: Self.hash, allowedSenders: ["@example.net"]),
        ])
        try file.save(path: path)
        let loaded = try UsersFile.load(path: path)
        #expect(loaded == file)
        #expect(loaded["app"]?.allowedSenders == ["app@example.com", "@example.org"])
        #expect(loaded["any"]?.allowedSenders == [])
        #expect(loaded["nobody"] == nil)
        #expect(PasswordHash.verify("one", against: loaded["app"]!.passwordHash))

        // Saving again replaces the file whole.
        var changed = loaded
        changed.users.removeAll { $0.name == "any" }
        try changed.save(path: path)
        #expect(try UsersFile.load(path: path).users.map(\.name) == ["app", "ünïcode.user@host"])
    }

    @Test func isWrittenWithMode0600AndNoTemporaryLeftBehind() throws {
        let folder = Folder()
        let path = folder.file("users")
        try UsersFile(users: [User(name: "app", passwordHash: Self.hash)]).save(path: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["users"])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("app:\(Self.hash):\n"))
        // Even over an existing, more open file (the rename replaces it).
        #expect(FileManager.default.createFile(atPath: path, contents: Data("# old\n".utf8), attributes: [.posixPermissions: 0o644]))
        try UsersFile(users: [User(name: "app", passwordHash: Self.hash)]).save(path: path)
        #expect((try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test func aMissingFileIsNoUsers() throws {
        let folder = Folder()
        #expect(try UsersFile.load(path: folder.file("absent")) == UsersFile())
    }

    @Test func readsCommentsBlankLinesAndSpaces() throws {
        let folder = Folder()
        let path = folder.file("users")
        try FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: true)
        let text = """
            # a comment

              app:\(Self.hash): app@example.com , @example.org ,
            other:\(Self.hash):
            """
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let file = try UsersFile.load(path: path)
        #expect(file.users.map(\.name) == ["app", "other"])
        #expect(file["app"]?.allowedSenders == ["app@example.com", "@example.org"])
        #expect(file["other"]?.allowedSenders == [])
    }

    static let malformed: [(String, Int)] = [
        ("app:\(hash)", 3),                          // two fields
        ("app:\(hash):x:y", 3),                      // four fields
        ("app:plaintext-password:", 3),              // not a crypt hash
        (":\(hash):", 3),                            // no name
        ("a b:\(hash):", 3),                         // a space in the name
        ("just a line", 3),
    ]

    @Test(arguments: malformed)
    func namesTheMalformedLine(line: String, number: Int) throws {
        let folder = Folder()
        let path = folder.file("users")
        try FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: true)
        try "# users\nok:\(Self.hash):\n\(line)\nlater:\(Self.hash):\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try UsersFile.load(path: path)
            Issue.record("a malformed line was accepted: \(line)")
        } catch let failure as UsersFile.Failure {
            #expect(failure.description.hasPrefix("\(path):\(number):"), "\(failure)")
        }
    }

    @Test(arguments: [("app", true), ("app.user@example.com", true), ("ünï", true), ("", false), ("a:b", false), ("a b", false),
                      ("a\tb", false), ("a\nb", false), (String(repeating: "x", count: 256), true), (String(repeating: "x", count: 257), false)])
    func validatesNames(name: String, isValid: Bool) {
        #expect(UsersFile.isValidName(name) == isValid)
    }
}
