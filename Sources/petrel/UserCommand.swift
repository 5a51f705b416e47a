import ArgumentParser
import Authentication
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `petrel user …`: the SMTP AUTH users (RFC 4954) in `[auth] users_file`.
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Manage SMTP AUTH users.", subcommands: [Add.self, Remove.self, List.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user, or change its password and senders.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The user name.") var name: String
        @Flag(help: "Read the password from one line of standard input instead of asking for it.") var passwordStdin = false
        @Option(help: "Sender addresses or @domains this user may use in MAIL FROM, comma-separated (default: any).")
        var allowedSenders: String?

        func validate() throws {
            guard UsersFile.isValidName(name) else {
                throw ValidationError("a user name must not be empty or contain ':' or spaces")
            }
        }

        func run() async throws {
            let configuration = try Bootstrap.loadConfiguration(options)
            let password = try readPassword()
            guard !password.isEmpty else {
                Bootstrap.printError("the password is empty")
                throw ExitCode.failure
            }
            let path = configuration.auth.usersFile
            var file = try UsersFile.load(path: path)
            let senders = allowedSenders?.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let user = User(name: name, passwordHash: try PasswordHash.make(password),
                            allowedSenders: senders ?? file[name]?.allowedSenders ?? [])
            let existed = file[name] != nil
            file.users.removeAll { $0.name == name }
            file.users.append(user)
            try file.save(path: path)
            print("\(name): \(existed ? "updated" : "added") in \(path)")
        }

        private func readPassword() throws -> String {
            if passwordStdin {
                guard let line = Swift.readLine(strippingNewline: true) else { return "" }
                return line.hasSuffix("\r") ? String(line.dropLast()) : line
            }
            guard isatty(0) == 1 else {
                Bootstrap.printError("no terminal to ask for the password; use --password-stdin")
                throw ExitCode.failure
            }
            let first = String(cString: getpass("Password: "))
            let second = String(cString: getpass("Again: "))
            guard first == second else {
                Bootstrap.printError("the passwords differ")
                throw ExitCode.failure
            }
            return first
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The user name.") var name: String

        func run() async throws {
            let configuration = try Bootstrap.loadConfiguration(options)
            var file = try UsersFile.load(path: configuration.auth.usersFile)
            guard file[name] != nil else {
                Bootstrap.printError("no user \(name)")
                throw ExitCode.failure
            }
            file.users.removeAll { $0.name == name }
            try file.save(path: configuration.auth.usersFile)
            print("\(name): removed")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users and their allowed senders.")

        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let configuration = try Bootstrap.loadConfiguration(options)
            let file = try UsersFile.load(path: configuration.auth.usersFile)
            if json {
                let rows = file.users.map { ["name": $0.name, "allowed_senders": $0.allowedSenders.joined(separator: ",")] }
                let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            for user in file.users {
                print("\(user.name)\t\(user.allowedSenders.isEmpty ? "(any sender)" : user.allowedSenders.joined(separator: ","))")
            }
        }
    }
}
