import ArgumentParser
import Foundation
import MailQueue
import PetrelConfig
import SMTPProtocol

/// `petrel queue …`: the operator's view of the queue and actions on it, while the server runs or not.
///
/// Exit codes: 0 ok, 1 a queue id not found (or the queue cannot be opened), 64 a usage error.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Inspect the mail queue and act on it.",
        discussion: """
            The commands are safe while the server runs: every action is a short transaction, and a message \
            being delivered at that moment ends consistent (delivered once, or acted on; never both, never lost).
            Exit codes: 0 ok, 1 not found, 64 usage.
            """,
        subcommands: [
            List.self, Show.self, Stats.self,
            QueueActionCommand.Hold.self, QueueActionCommand.Release.self, QueueActionCommand.Retry.self,
            QueueActionCommand.Delete.self, QueueActionCommand.Bounce.self,
        ]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List queued messages, oldest first: one line per message.",
            discussion: """
                At most --limit messages are listed; the next page starts --after the last queue id shown. \
                --json prints an array of messages (the shape of `queue show --json`, without headers and body).
                """
        )

        @OptionGroup var options: ConfigOption
        @OptionGroup var filter: QueueFilterOptions
        @Option(help: "Show at most this many messages.") var limit = 1000
        @Option(help: ArgumentHelp("Start after this message (the last queue id of the previous page).", valueName: "queue-id"))
        var after: String?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard limit >= 0 else { throw ValidationError("--limit must not be negative") }
            if let after, !QueueID.isValid(after.uppercased()) {
                throw ValidationError("--after takes a queue id, not '\(after)'")
            }
        }

        func run() async throws {
            let queueFilter = try filter.queueFilter(now: Date())
            let store = try Bootstrap.openExistingQueue(try Bootstrap.loadConfiguration(options), options)
            let messages = try store.listMessages(matching: queueFilter, after: after, limit: limit)
            if json {
                try QueueOutput.printJSON(messages)
                return
            }
            print(QueueOutput.table(messages, limit: limit))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one message: its envelope, each recipient's state, and the headers.",
            discussion: "--json adds \"headers\" and \"body\" (null without --body) to the message's keys."
        )

        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Show the whole text, as it will be delivered.") var body = false
        @Argument(help: "The queue id.") var queueID: String

        func run() async throws {
            let store = try Bootstrap.openExistingQueue(try Bootstrap.loadConfiguration(options), options)
            let queueID = queueID.uppercased()
            guard let message = try store.message(queueID: queueID) else {
                Bootstrap.printError("no message \(queueID) in the queue")
                throw ExitCode.failure
            }
            let headers = try store.storedHeaders(queueID: queueID) ?? Data()
            let text = body ? try store.content(queueID: queueID) : nil
            if json {
                try QueueOutput.printJSON(QueueOutput.MessageDetails(
                    message: message, headers: String(decoding: headers, as: UTF8.self),
                    body: text.map { String(decoding: $0, as: UTF8.self) }
                ))
                return
            }
            print(QueueOutput.details(message))
            print("headers:")
            QueueOutput.write(headers)
            if let text {
                print("text:")
                QueueOutput.write(text)
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What is wrong right now: counts by state, the top deferred destinations and errors, the oldest message."
        )

        @OptionGroup var options: ConfigOption
        @Option(help: "How many domains and errors to show.") var top = 10
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard top >= 0 else { throw ValidationError("--top must not be negative") }
        }

        func run() async throws {
            let store = try Bootstrap.openExistingQueue(try Bootstrap.loadConfiguration(options), options)
            let statistics = try store.statistics(now: Date(), top: top)
            if json {
                try QueueOutput.printJSON(statistics)
                return
            }
            print(QueueOutput.statistics(statistics, now: Date()))
        }
    }
}

/// The filter options shared by `list` and the actions.
struct QueueFilterOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Messages with a recipient in this state, or on hold.", valueName: "queued|deferred|held|failed"))
    var state: String?
    @Option(help: "Messages with a recipient at this domain.") var domain: String?
    @Option(help: ArgumentHelp("Messages from this sender; @domain for any sender there, <> for bounces.", valueName: "address"))
    var sender: String?
    @Option(help: ArgumentHelp("Messages with this recipient.", valueName: "address")) var recipient: String?
    @Option(help: ArgumentHelp("Messages that arrived at least this long ago: 30s, 5m, 4h, 5d.", valueName: "duration"))
    var olderThan: String?

    var isEmpty: Bool { state == nil && domain == nil && sender == nil && recipient == nil && olderThan == nil }

    func validate() throws {
        if let state, QueueFilter.State(rawValue: state) == nil {
            throw ValidationError("--state must be one of \(QueueFilter.State.allCases.map(\.rawValue).joined(separator: ", ")), not '\(state)'")
        }
        if let olderThan, ValueFormats.parseDuration(olderThan) == nil {
            throw ValidationError("--older-than takes a duration like 30s, 5m, 4h or 5d, not '\(olderThan)'")
        }
        for (name, value) in [("--domain", domain), ("--recipient", recipient)] where value?.isEmpty == true {
            throw ValidationError("\(name) must not be empty")
        }
    }

    func queueFilter(now: Date) throws -> QueueFilter {
        var filter = QueueFilter()
        filter.state = state.flatMap(QueueFilter.State.init(rawValue:))
        filter.domain = domain
        filter.sender = sender
        filter.recipient = recipient
        if let olderThan, let duration = ValueFormats.parseDuration(olderThan) {
            filter.arrivedBefore = now.addingTimeInterval(-duration.inSeconds)
        }
        return filter
    }
}
