import Foundation

/// One SMTP AUTH user.
public struct User: Sendable, Equatable {
    public var name: String
    /// A libcrypt hash (`$y$…`).
    public var passwordHash: String
    /// Sender addresses (`app@example.com`) or domains (`@example.org`) this user may use in MAIL FROM;
    /// empty: any. The session applies them (`SMTPProtocol.AllowedSenders`).
    public var allowedSenders: [String]

    public init(name: String, passwordHash: String, allowedSenders: [String] = []) {
        self.name = name
        self.passwordHash = passwordHash
        self.allowedSenders = allowedSenders.map { $0.lowercased() }
    }
}

/// The users file, written by `petrel user add`: one user a line, `name:hash:allowed,senders`, mode 0600.
/// Names may not contain `:` or whitespace; yescrypt hashes contain no `:`.
public struct UsersFile: Sendable, Equatable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public var users: [User]

    public init(users: [User] = []) {
        self.users = users
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 256 && !name.contains { $0 == ":" || $0.isWhitespace || $0.isNewline }
    }

    /// Reads the file; a missing file is an empty list.
    public static func load(path: String) throws -> UsersFile {
        guard FileManager.default.fileExists(atPath: path) else { return UsersFile() }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Failure(description: "\(path): cannot read the users file (\(error.localizedDescription))")
        }
        var users: [User] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = line.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 3, isValidName(String(fields[0])), fields[1].hasPrefix("$") else {
                throw Failure(description: "\(path):\(number + 1): expected name:hash:allowed-senders")
            }
            let allowed = fields[2].split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            users.append(User(name: String(fields[0]), passwordHash: String(fields[1]), allowedSenders: allowed))
        }
        return UsersFile(users: users)
    }

    /// Writes the file atomically (a temporary file, fsynced, renamed over the old one), mode 0600.
    public func save(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var text = "# Petrel SMTP AUTH users: name:yescrypt-hash:allowed-senders. Edit with `petrel user`.\n"
        for user in users {
            text += "\(user.name):\(user.passwordHash):\(user.allowedSenders.joined(separator: ","))\n"
        }
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Failure(description: "\(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == bytes.count, synced == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw Failure(description: "\(path): cannot write the users file")
        }
    }

    public subscript(name: String) -> User? {
        users.first { $0.name == name }
    }
}
