import ArgumentParser
import Foundation
import MailQueue
import PetrelConfig
import SMTPProtocol

/// `petrel queue hold|release|retry|delete|bounce`: actions on messages named by queue id or chosen by a
/// filter. Each prints one line per message saying what it did (`--json`: one object per message).
/// See `QueueStore.perform(_:on:requestedBy:now:report:)` for what happens to a message being delivered meanwhile.
/// The server logs one line per message acted on, naming the Unix user and `--reason` (``OperatorAuditLog``).
enum QueueActionCommand {
    /// Which messages: queue ids, or `--all`, or filters.
    struct Target: ParsableArguments {
        @Argument(help: ArgumentHelp("Queue ids.", valueName: "queue-id")) var queueIDs: [String] = []
        @Flag(help: "Every message in the queue.") var all = false
        @OptionGroup var filter: QueueFilterOptions
        @Option(help: "Why: written to the server's log with the action (and for bounce, into the bounce).") var reason: String?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            let hasFilter = all || !filter.isEmpty
            if queueIDs.isEmpty && !hasFilter {
                throw ValidationError("name the messages: queue ids, --all, or a filter (--domain, --sender, --recipient, --state, --older-than)")
            }
            if !queueIDs.isEmpty && hasFilter {
                throw ValidationError("give either queue ids or --all/filters, not both")
            }
            if all && !filter.isEmpty {
                throw ValidationError("--all takes no filter")
            }
            if filter.state == "failed" {
                throw ValidationError("--state failed selects nothing to act on; actions take --state queued, deferred or held")
            }
        }

        func selection(now: Date) throws -> QueueSelection {
            queueIDs.isEmpty ? .matching(try filter.queueFilter(now: now)) : .queueIDs(queueIDs)
        }
    }

    /// The stable JSON shape of every action.
    struct Report: Encodable {
        var action: String
        var results: [QueueActionResult]
    }

    static func run(_ makeAction: (PetrelConfiguration) -> QueueAction, target: Target, options: ConfigOption) throws {
        let configuration = try Bootstrap.loadConfiguration(options)
        let store = try Bootstrap.openExistingQueue(configuration, options)
        let action = makeAction(configuration)
        let request = ActionRequest(operatorName: OperatorName.current(), reason: target.reason)
        let now = Date()
        var notFound = 0
        var count = 0
        let results = try store.perform(action, on: try target.selection(now: now), requestedBy: request, now: now) { batch in
            for result in batch {
                count += 1
                if result.outcome == .notFound { notFound += 1 }
                guard !target.json else { continue }
                if result.outcome == .notFound {
                    Bootstrap.printError("\(result.queueID): not found")
                } else {
                    print(line(for: result))
                }
            }
        }
        if target.json {
            try QueueOutput.printJSON(Report(action: action.name, results: results))
        } else if count == 0 {
            Bootstrap.printError("no message matches")
        }
        if notFound > 0 { throw ExitCode.failure }
    }

    /// `65SH…: held`, and what else the operator should know.
    static func line(for result: QueueActionResult) -> String {
        let id = result.queueID
        let recipients = addresses(result.recipients)
        let inDelivery = addresses(result.inDelivery)
        let waiting = result.inDelivery.isEmpty ? "" : "; \(inDelivery) in delivery now: done when that attempt ends, unless it delivers"
        switch result.outcome {
        case .held:
            return "\(id): held" + (result.inDelivery.isEmpty ? "" : " (the attempt under way for \(inDelivery) goes on)")
        case .alreadyHeld:
            return "\(id): already held"
        case .released:
            return "\(id): released" + (result.recipients.isEmpty ? "" : ", due now: \(recipients)")
        case .notHeld:
            return "\(id): not held"
        case .retried:
            return "\(id): retried, due now: \(recipients)" + (result.inDelivery.isEmpty ? "" : "; \(inDelivery) in delivery now")
        case .onHold:
            return "\(id): on hold, not retried (release it)"
        case .inDelivery:
            return "\(id): in delivery now: \(inDelivery)"
        case .deleted:
            return "\(id): deleted" + (result.isRemoved ? "" : " \(recipients)") + waiting
        case .deletePending:
            return "\(id): delete pending" + waiting
        case .bounced:
            let bounce = result.notification.map { ", bounce \($0) queued" } ?? ", no bounce sent"
            return "\(id): bounced \(recipients)\(bounce)" + waiting
        case .bouncePending:
            return "\(id): bounce pending" + waiting
        case .nothingPending:
            return "\(id): nothing to deliver"
        case .notFound:
            return "\(id): not found"
        }
    }

    static func addresses(_ list: [String]) -> String {
        let shown = list.prefix(5).map { "<\($0)>" }.joined(separator: ", ")
        return list.count > 5 ? "\(shown) and \(list.count - 5) more" : shown
    }

    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put messages on hold: never delivered nor expired until released.",
            discussion: "An attempt already under way for a message goes on; no other starts."
        )
        @OptionGroup var options: ConfigOption
        @OptionGroup var target: Target

        func run() async throws { try QueueActionCommand.run({ _ in .hold }, target: target, options: options) }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release held messages: their pending recipients are due now.")
        @OptionGroup var options: ConfigOption
        @OptionGroup var target: Target

        func run() async throws { try QueueActionCommand.run({ _ in .release }, target: target, options: options) }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make pending recipients due now.",
            discussion: "With --domain or --recipient, only the matching recipients. A held message is not retried."
        )
        @OptionGroup var options: ConfigOption
        @OptionGroup var target: Target

        func run() async throws { try QueueActionCommand.run({ _ in .retry }, target: target, options: options) }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete messages without a bounce.",
            discussion: """
                With --domain, --recipient or --state queued|deferred, only the matching recipients are removed \
                (the message goes when none is left to deliver). A recipient being delivered at that moment is \
                removed when that attempt ends, unless it delivers.
                """
        )
        @OptionGroup var options: ConfigOption
        @OptionGroup var target: Target

        func run() async throws { try QueueActionCommand.run({ _ in .delete }, target: target, options: options) }
    }

    struct Bounce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bounce messages now: pending recipients fail with 5.0.0 and the sender gets a bounce.",
            discussion: """
                With --domain, --recipient or --state queued|deferred, only the matching recipients. No bounce is \
                sent for a message with the null sender (a bounce itself) or to recipients with NOTIFY=NEVER. A \
                recipient being delivered at that moment is bounced when that attempt ends, unless it delivers.
                """
        )
        @OptionGroup var options: ConfigOption
        @OptionGroup var target: Target

        func run() async throws {
            let reason = target.reason
            try QueueActionCommand.run({ configuration in
                .bounce(reason: reason, notification: SenderNotification(
                    reportingMTA: configuration.hostname,
                    lifetime: configuration.delivery.maxQueueLifetime.inSeconds
                ))
            }, target: target, options: options)
        }
    }
}
