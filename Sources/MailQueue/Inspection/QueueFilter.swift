import Foundation
import GRDB

/// Which messages a `petrel queue` command lists or acts on: every condition given must hold.
///
/// Some conditions are about recipients (`domain`, `recipient`, and the recipient states): a message
/// matches when one of its recipients meets all of them, and an action that works on recipients
/// (`retry`, `delete`, `bounce`) then works on those recipients only. The others are about the message
/// (`sender`, `arrivedBefore`, the `held` state) and take in all its recipients.
public struct QueueFilter: Sendable, Equatable {
    /// A recipient's state in the queue, or `held` for a message on hold. (No `delivered`: delivered mail
    /// leaves the queue, and the delivered recipients of a message still queued are not what anyone looks for.)
    public enum State: String, Sendable, CaseIterable {
        case queued, deferred, held, failed
    }

    public var state: State?
    /// The recipient's domain, in any case.
    public var domain: String?
    /// The sender (reverse path) in any case: `user@example.com`, `@example.com` for every sender at a
    /// domain, or `<>` (or `""`) for the null path, the queue's own notifications.
    public var sender: String?
    /// The recipient's address, in any case.
    public var recipient: String?
    /// Messages that arrived at this time or before.
    public var arrivedBefore: Date?

    public init(state: State? = nil, domain: String? = nil, sender: String? = nil, recipient: String? = nil, arrivedBefore: Date? = nil) {
        self.state = state
        self.domain = domain
        self.sender = sender
        self.recipient = recipient
        self.arrivedBefore = arrivedBefore
    }

    /// No condition: the whole queue (`--all`).
    public var isEmpty: Bool { self == QueueFilter() }

    /// `true` when some condition is about recipients, so that actions work on the matching recipients
    /// rather than on every recipient of the matching messages.
    public var selectsRecipients: Bool { recipientCondition != nil }

    /// How many matching recipients make a recipient condition selective: below it, the matching messages
    /// are found through a recipient index and sorted, rather than by reading the queue in order.
    static let selectiveRecipientCount = 10_000

    /// The conditions on `m` (the message row); `"1"` when there are none.
    ///
    /// The recipient conditions become an `EXISTS` over each message's recipients, for a read of the queue
    /// in order that stops at the page's end: right when many messages match. With `recipientsFirst` they
    /// become `m.id IN (SELECT message_id …)`, looked up through the recipient indexes and then sorted: right
    /// when few match (see ``QueueStore/messageCondition(for:in:selectiveCount:)``).
    var messageCondition: (sql: String, arguments: StatementArguments) { messageCondition(recipientsFirst: false) }

    func messageCondition(recipientsFirst: Bool) -> (sql: String, arguments: StatementArguments) {
        var clauses: [String] = []
        var arguments = StatementArguments()
        if state == .held {
            // Written with the literal so that the partial index `message_held` applies.
            clauses.append("m.is_held = 1")
        }
        if let sender {
            let bare = Self.bareAddress(sender)
            if bare.isEmpty {
                clauses.append("m.return_path = ''")
            } else if bare.hasPrefix("@") {
                clauses.append("m.return_path LIKE ? ESCAPE '\\'")
                arguments += ["%" + Self.escapedForLike(bare)]
            } else {
                clauses.append("m.return_path = ? COLLATE NOCASE")
                arguments += [bare]
            }
        }
        if let arrivedBefore {
            clauses.append("m.arrived_at <= ?")
            arguments += [arrivedBefore.unixMilliseconds]
        }
        if let (sql, recipientArguments) = recipientCondition {
            clauses.append(recipientsFirst
                ? "m.id IN (SELECT r.message_id FROM recipient r WHERE \(sql))"
                // A probe of each message's own recipients: never let the planner scan an index by state.
                : "EXISTS (SELECT 1 FROM recipient r INDEXED BY recipient_message WHERE r.message_id = m.id AND \(sql))")
            arguments += recipientArguments
        }
        return (clauses.isEmpty ? "1" : clauses.joined(separator: " AND "), arguments)
    }

    /// The conditions on `r` (a recipient row), or `nil` when there are none.
    var recipientCondition: (sql: String, arguments: StatementArguments)? {
        var clauses: [String] = []
        var arguments = StatementArguments()
        if let state, state != .held {
            clauses.append("r.state = ?")
            arguments += [state.rawValue]
        }
        if let domain {
            clauses.append("r.domain = ?")
            arguments += [domain.lowercased()]
        }
        if let recipient {
            let address = Self.bareAddress(recipient)
            clauses.append("r.address = ? COLLATE NOCASE")
            arguments += [address]
            if domain == nil, let at = address.lastIndex(of: "@") {
                // The domain column is the address's, lowercased: it lets the index `recipient_domain` find it.
                clauses.append("r.domain = ?")
                arguments += [address[address.index(after: at)...].lowercased()]
            }
        }
        return clauses.isEmpty ? nil : (clauses.joined(separator: " AND "), arguments)
    }

    /// `<user@example.com>` → `user@example.com`; `<>` → `""`.
    static func bareAddress(_ text: String) -> String {
        var text = text.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("<"), text.hasSuffix(">"), text.count >= 2 { text = String(text.dropFirst().dropLast()) }
        return text
    }

    static func escapedForLike(_ text: String) -> String {
        var output = ""
        for character in text {
            if character == "%" || character == "_" || character == "\\" { output.append("\\") }
            output.append(character)
        }
        return output
    }
}
