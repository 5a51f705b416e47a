import ArgumentParser
import Foundation
import MailQueue

/// `petrel queue …`: read the queue, while the server runs or not.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "Inspect the mail queue.", subcommands: [List.self, Show.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List queued messages, oldest first.")

        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON.") var json = false
        @Option(help: "Show at most this many messages.") var limit = 1000

        func run() async throws {
            let store = try Bootstrap.openQueue(try Bootstrap.loadConfiguration(options))
            let messages = try store.listMessages(limit: limit)
            if json {
                try QueueOutput.printJSON(messages)
                return
            }
            print(QueueOutput.table(messages))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one message: its envelope and each recipient's state.")

        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON.") var json = false
        @Argument(help: "The queue id.") var queueID: String

        func run() async throws {
            let store = try Bootstrap.openQueue(try Bootstrap.loadConfiguration(options))
            guard let message = try store.message(queueID: queueID.uppercased()) else {
                Bootstrap.printError("no message \(queueID) in the queue")
                throw ExitCode.failure
            }
            if json {
                try QueueOutput.printJSON(message)
                return
            }
            print(QueueOutput.details(message))
        }
    }
}

/// How queue contents are printed.
enum QueueOutput {
    static func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func timestamp(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }

    static func table(_ messages: [QueuedMessage]) -> String {
        var lines = ["QUEUE ID        ARRIVED               SIZE      SENDER / RECIPIENTS"]
        for message in messages {
            let size = String(message.size).padding(toLength: 9, withPad: " ", startingAt: 0)
            let held = message.isHeld ? " (held)" : ""
            lines.append("\(message.queueID)  \(timestamp(message.arrivedAt))  \(size) <\(message.sender)>\(held)")
            for recipient in message.recipients {
                var line = String(repeating: " ", count: 50) + "<\(recipient.address)> \(recipient.state)"
                if let reply = recipient.lastReply { line += ": " + String(reply.prefix(60)) }
                lines.append(line)
            }
        }
        lines.append("-- \(messages.count) message\(messages.count == 1 ? "" : "s")")
        return lines.joined(separator: "\n")
    }

    static func details(_ message: QueuedMessage) -> String {
        var lines = [
            "queue_id:    \(message.queueID)",
            "from:        <\(message.sender)>",
            "size:        \(message.size)",
            "arrived:     \(timestamp(message.arrivedAt))",
            "expires:     \(timestamp(message.expiresAt))",
            "client:      \(message.clientHelo) [\(message.clientAddress)] with \(message.protocol)",
        ]
        if let user = message.authenticatedUser { lines.append("auth_user:   \(user)") }
        if let body = message.bodyType { lines.append("body:        \(body)") }
        if message.isSMTPUTF8 { lines.append("smtputf8:    yes") }
        if let ret = message.dsnReturn { lines.append("dsn_ret:     \(ret)") }
        if let envid = message.dsnEnvelopeID { lines.append("dsn_envid:   \(envid)") }
        if message.isHeld { lines.append("held:        yes") }
        lines.append("recipients:")
        for recipient in message.recipients {
            var line = "  <\(recipient.address)> \(recipient.state), attempts=\(recipient.attempts), next=\(timestamp(recipient.nextAttemptAt))"
            if let notify = recipient.notify { line += ", notify=\(notify)" }
            if let orcpt = recipient.originalRecipient { line += ", orcpt=\(orcpt)" }
            lines.append(line)
            if let reply = recipient.lastReply {
                lines.append("      last reply: \(reply)\(recipient.lastRelay.map { " (from \($0))" } ?? "")")
            }
        }
        return lines.joined(separator: "\n")
    }
}
