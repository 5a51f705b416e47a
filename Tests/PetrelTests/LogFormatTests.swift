import Foundation
import LogEvents
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import petrel

/// Each relay event rendered both ways, from the same value: the Postfix-style line people and `grep`
/// read, and the JSON fields pipelines filter on. Remote text must not forge a field or a line in the
/// first, and is the plain string in the second.
struct LogFormatTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var event: RelayEvent
        var human: String
        var json: [String: String]
        var testDescription: String { name }
    }

    static let id = "65SHN2V1Q8K0TZ"

    static func attempt(
        to recipient: String = "bob@x.test", _ result: DeliveryAttemptEvent.Result, status: DeliveryAttemptEvent.Status = .sent,
        dsn: String = "2.0.0", tls: String? = nil, orcpt: String? = nil, attempts: Int = 1
    ) -> RelayEvent {
        .deliveryAttempt(DeliveryAttemptEvent(
            queueID: id, recipient: recipient, originalRecipient: orcpt, result: result, delay: 0.44, attempts: attempts,
            tls: tls, dsn: dsn, status: status
        ))
    }

    static func accepted(sender: String = "a@x.test", helo: String = "mail.x.test", user: String? = nil, tls: String? = nil) -> RelayEvent {
        .messageAccepted(MessageAcceptedEvent(
            queueID: id, sender: sender, size: 1234, recipientCount: 2, clientName: nil, clientAddress: "192.0.2.7",
            helo: helo, saslUsername: user, tls: tls
        ))
    }

    static func action(
        _ action: String, by name: String = "root", reason: String? = nil, whole: Bool = true,
        recipients: [String] = [], inDelivery: [String] = [], handedOver: [String] = []
    ) -> RelayEvent {
        .operatorAction(OperatorActionEvent(
            queueID: id, action: action, operatorName: name, reason: reason, isWholeMessage: whole,
            recipients: recipients, inDelivery: inDelivery, handedOver: handedOver
        ))
    }

    static let relay = "mx.x.test[192.0.2.1]:25"

    static let cases: [Case] = [
        Case(name: "sent, reply with balanced parentheses and commas kept whole",
             event: attempt(.reply("250 2.0.0 Ok: queued as 4F2A (id=7, size=3)", relay: relay), tls: "TLSv1.3"),
             human: "\(id): to=<bob@x.test>, relay=\(relay), delay=0.4, attempts=1, tls=TLSv1.3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F2A (id=7, size=3))",
             json: ["event": "delivery_attempt", "queue_id": id, "to": "bob@x.test", "relay": relay, "delay": "0.4", "attempts": "1",
                    "tls": "TLSv1.3", "dsn": "2.0.0", "status": "sent", "reply": "250 2.0.0 Ok: queued as 4F2A (id=7, size=3)"]),
        Case(name: "an unbalanced reply cannot close the parentheses and add fields",
             event: attempt(.reply("550 5.1.1 no), status=sent, relay=evil (x", relay: relay), status: .bounced, dsn: "5.1.1"),
             human: #"\#(id): to=<bob@x.test>, relay=\#(relay), delay=0.4, attempts=1, dsn=5.1.1, status=bounced (550 5.1.1 no\), status=sent, relay=evil \(x)"#,
             json: ["event": "delivery_attempt", "queue_id": id, "to": "bob@x.test", "relay": relay, "delay": "0.4", "attempts": "1",
                    "dsn": "5.1.1", "status": "bounced", "reply": "550 5.1.1 no), status=sent, relay=evil (x"]),
        Case(name: "line breaks, other controls and backslashes in a reply are escaped",
             event: attempt(.reply("451 4.3.0 a\r\n2025-03-01T00:00:00.000Z info petrel: [Delivery] \(id): to=<x>, status=sent\u{1B}[2J \\x0A\u{85}\u{2028}", relay: relay),
                            status: .deferred, dsn: "4.3.0"),
             human: #"\#(id): to=<bob@x.test>, relay=\#(relay), delay=0.4, attempts=1, dsn=4.3.0, status=deferred (451 4.3.0 a\x0D\x0A2025-03-01T00:00:00.000Z info petrel: [Delivery] \#(id): to=<x>, status=sent\x1B[2J \\x0A\x85\u2028)"#,
             json: ["event": "delivery_attempt", "queue_id": id, "to": "bob@x.test", "relay": relay, "delay": "0.4", "attempts": "1",
                    "dsn": "4.3.0", "status": "deferred",
                    "reply": "451 4.3.0 a\r\n2025-03-01T00:00:00.000Z info petrel: [Delivery] \(id): to=<x>, status=sent\u{1B}[2J \\x0A\u{85}\u{2028}"]),
        Case(name: "a local error has no relay, and says it is one",
             event: attempt(.localError("connect to mx.x.test[192.0.2.1]:25: Connection refused"), status: .deferred, dsn: "4.4.1", orcpt: "rfc822;bob@x.test"),
             human: "\(id): to=<bob@x.test>, relay=none, delay=0.4, attempts=1, dsn=4.4.1, status=deferred (local error: connect to mx.x.test[192.0.2.1]:25: Connection refused)",
             json: ["event": "delivery_attempt", "queue_id": id, "to": "bob@x.test", "orcpt": "rfc822;bob@x.test", "relay": "none", "delay": "0.4",
                    "attempts": "1", "dsn": "4.4.1", "status": "deferred", "reply": "local error: connect to mx.x.test[192.0.2.1]:25: Connection refused"]),
        Case(name: "expired, with the last reply",
             event: attempt(.reply("451 4.4.1 later", relay: relay), status: .expired, dsn: "5.4.7", attempts: 12),
             human: "\(id): to=<bob@x.test>, relay=\(relay), delay=0.4, attempts=12, dsn=5.4.7, status=expired (expired after 12 attempts; last: 451 4.4.1 later)",
             json: ["event": "delivery_attempt", "queue_id": id, "to": "bob@x.test", "relay": relay, "delay": "0.4", "attempts": "12",
                    "dsn": "5.4.7", "status": "expired", "reply": "expired after 12 attempts; last: 451 4.4.1 later"]),
        Case(name: "a recipient with angle brackets in its quoted local part stays inside its own",
             event: attempt(to: #""x>, relay=evil"@x.test"#, .reply("250 Ok", relay: relay)),
             human: #"\#(id): to=<"x\>, relay=evil"@x.test>, relay=\#(relay), delay=0.4, attempts=1, dsn=2.0.0, status=sent (250 Ok)"#,
             json: ["event": "delivery_attempt", "queue_id": id, "to": #""x>, relay=evil"@x.test"#, "relay": relay, "delay": "0.4",
                    "attempts": "1", "dsn": "2.0.0", "status": "sent", "reply": "250 Ok"]),
        Case(name: "accepted",
             event: accepted(user: "alice", tls: "TLSv1.3"),
             human: "\(id): from=<a@x.test>, size=1234, nrcpt=2, client=unknown[192.0.2.7], helo=mail.x.test, sasl_username=alice, tls=TLSv1.3, status=queued",
             json: ["event": "message_accepted", "queue_id": id, "from": "a@x.test", "size": "1234", "nrcpt": "2", "client": "unknown[192.0.2.7]",
                    "helo": "mail.x.test", "sasl_username": "alice", "tls": "TLSv1.3", "status": "queued"]),
        Case(name: "the null sender, and an EHLO name that tries to add a field",
             event: accepted(sender: "", helo: "evil, sasl_username=root\r\n"),
             human: #"\#(id): from=<>, size=1234, nrcpt=2, client=unknown[192.0.2.7], helo=evil,\x20sasl_username=root\x0D\x0A, status=queued"#,
             json: ["event": "message_accepted", "queue_id": id, "from": "", "size": "1234", "nrcpt": "2", "client": "unknown[192.0.2.7]",
                    "helo": "evil, sasl_username=root\r\n", "status": "queued"]),
        Case(name: "refused: the queue could not be written",
             event: .messageRefused(MessageRefusedEvent(queueID: id, stage: .queue, error: "disk full\nnext")),
             human: #"\#(id): queue write failed, status=refused (452 4.3.1): disk full\x0Anext"#,
             json: ["event": "message_refused", "queue_id": id, "status": "refused", "reply": "452 4.3.1", "error": "disk full\nnext"]),
        Case(name: "refused: the spool file could not be written",
             event: .messageRefused(MessageRefusedEvent(queueID: id, stage: .spool, error: "No space left on device")),
             human: "\(id): spool write failed, status=refused (452 4.3.1): No space left on device",
             json: ["event": "message_refused", "queue_id": id, "status": "refused", "reply": "452 4.3.1", "error": "No space left on device"]),
        Case(name: "a hop that cannot take the message",
             event: .hop(HopEvent(queueID: id, kind: .cannotTakeMessage, relay: relay, reply: "554 5.6.7 SMTPUTF8 not offered")),
             human: "\(id): \(relay) cannot take the message: 554 5.6.7 SMTPUTF8 not offered",
             json: ["event": "hop_refused", "queue_id": id, "relay": relay, "reply": "554 5.6.7 SMTPUTF8 not offered"]),
        Case(name: "a TLS handshake given up for plaintext",
             event: .hop(HopEvent(queueID: id, kind: .tlsFallback, relay: relay, reply: "handshake failed (bad record mac")),
             human: #"\#(id): TLS handshake with \#(relay) failed (handshake failed \(bad record mac); retrying in plaintext"#,
             json: ["event": "tls_fallback", "queue_id": id, "relay": relay, "reply": "handshake failed (bad record mac"]),
        Case(name: "a bounce",
             event: .senderNotification(SenderNotificationEvent(reportedQueueID: id, kind: .failure, notificationQueueID: "65SHN2V1Q8K0UA")),
             human: "\(id): sender non-delivery notification: 65SHN2V1Q8K0UA",
             json: ["event": "sender_notification", "queue_id": id, "notification": "failure", "notification_queue_id": "65SHN2V1Q8K0UA"]),
        Case(name: "a delay warning",
             event: .senderNotification(SenderNotificationEvent(reportedQueueID: id, kind: .delay, notificationQueueID: "65SHN2V1Q8K0UA")),
             human: "\(id): sender delay notification: 65SHN2V1Q8K0UA",
             json: ["event": "sender_notification", "queue_id": id, "notification": "delay", "notification_queue_id": "65SHN2V1Q8K0UA"]),
        Case(name: "a delivery notification",
             event: .senderNotification(SenderNotificationEvent(reportedQueueID: id, kind: .success, notificationQueueID: "65SHN2V1Q8K0UA")),
             human: "\(id): sender delivery notification: 65SHN2V1Q8K0UA",
             json: ["event": "sender_notification", "queue_id": id, "notification": "success", "notification_queue_id": "65SHN2V1Q8K0UA"]),
        Case(name: "a failed notification", event: .notificationDiscarded(queueID: id),
             human: "\(id): a notification could not be delivered; it is discarded (no bounce of a bounce)",
             json: ["event": "notification_discarded", "queue_id": id]),
        Case(name: "removed", event: .messageRemoved(queueID: id), human: "\(id): removed",
             json: ["event": "message_removed", "queue_id": id]),
        Case(name: "held, with a reason",
             event: action("hold", by: "alice", reason: "spam run"),
             human: "\(id): held by operator alice (reason: spam run)",
             json: ["event": "operator_action", "queue_id": id, "action": "hold", "operator": "alice", "reason": "spam run"]),
        Case(name: "a reason that tries to close its parentheses",
             event: action("delete", reason: "x), action=release (y"),
             human: #"\#(id): removed by operator root (reason: x\), action=release \(y)"#,
             json: ["event": "operator_action", "queue_id": id, "action": "delete", "operator": "root", "reason": "x), action=release (y"]),
        Case(name: "some recipients retried are named",
             event: action("retry", by: "bob", whole: false, recipients: ["x@far.test"]),
             human: "\(id): retried <x@far.test> by operator bob",
             json: ["event": "operator_action", "queue_id": id, "action": "retry", "operator": "bob", "recipients": "x@far.test"]),
        Case(name: "a long list is cut after five",
             event: action("retry", whole: false, recipients: (1...7).map { "r\($0)@x.test" }),
             human: "\(id): retried <r1@x.test> <r2@x.test> <r3@x.test> <r4@x.test> <r5@x.test> and 2 more by operator root",
             json: ["event": "operator_action", "queue_id": id, "action": "retry", "operator": "root",
                    "recipients": "r1@x.test,r2@x.test,r3@x.test,r4@x.test,r5@x.test,r6@x.test,r7@x.test"]),
        Case(name: "a bounce that waited: what the attempt settled",
             event: action("bounce", recipients: ["y@far.test"], inDelivery: ["x@far.test", "y@far.test"]),
             human: "\(id): bounced <y@far.test> by operator root; <x@far.test> settled by the attempt under way",
             json: ["event": "operator_action", "queue_id": id, "action": "bounce", "operator": "root", "recipients": "y@far.test"]),
        Case(name: "a delete taken over by a later one",
             event: action("delete", by: "alice", inDelivery: ["x@far.test"], handedOver: ["x@far.test"]),
             human: "\(id): removed nothing by operator alice; <x@far.test> left to a later request",
             json: ["event": "operator_action", "queue_id": id, "action": "delete", "operator": "alice"]),
        Case(name: "a whole message removed",
             event: action("delete", recipients: ["x@far.test"]),
             human: "\(id): removed by operator root",
             json: ["event": "operator_action", "queue_id": id, "action": "delete", "operator": "root", "recipients": "x@far.test"]),
        Case(name: "refused at connect: client_networks",
             event: .session(SessionEvent(client: "192.0.2.7", .refusedByClientNetworks)),
             human: "connection refused: not in client_networks client=192.0.2.7",
             json: ["event": "connection_refused", "client": "192.0.2.7"]),
        Case(name: "refused at connect: too many",
             event: .session(SessionEvent(client: "2001:db8::7", .refusedTooManyConnections)),
             human: "connection refused: too many connections client=2001:db8::7",
             json: ["event": "connection_refused", "client": "2001:db8::7"]),
        Case(name: "a timeout in DATA",
             event: .session(SessionEvent(client: "192.0.2.7", .timedOut(isInData: true))),
             human: "timeout client=192.0.2.7 while=DATA", json: ["event": "timeout", "client": "192.0.2.7", "while": "DATA"]),
        Case(name: "a TLS handshake that failed, the reason quoted and escaped",
             event: .session(SessionEvent(client: "192.0.2.7", .tlsHandshakeFailed(reason: "bad \"hello\"\r\nuser=root"))),
             human: #"TLS handshake failed client=192.0.2.7 reason="bad \"hello\"\r\nuser=root""#,
             json: ["event": "tls_failed", "client": "192.0.2.7", "reason": "bad \"hello\"\r\nuser=root"]),
        Case(name: "a message refused at the end of its data",
             event: .session(SessionEvent(client: "192.0.2.7", .messageRefused(reply: "550 5.6.0 bare LF"))),
             human: #"message refused client=192.0.2.7 reply="550 5.6.0 bare LF""#,
             json: ["event": "message_rejected", "client": "192.0.2.7", "reply": "550 5.6.0 bare LF"]),
        Case(name: "AUTH ok", event: .session(SessionEvent(client: "192.0.2.7", .authenticated(user: "alice"))),
             human: "AUTH ok client=192.0.2.7 user=alice", json: ["event": "auth_ok", "client": "192.0.2.7", "user": "alice"]),
        Case(name: "AUTH failed for a name that is no user's: no name",
             event: .session(SessionEvent(client: "192.0.2.7", .authenticationFailed(user: nil))),
             human: "AUTH failed client=192.0.2.7", json: ["event": "auth_failed", "client": "192.0.2.7"]),
        Case(name: "AUTH throttled",
             event: .session(SessionEvent(client: "192.0.2.7", .authenticationThrottled(user: "alice"))),
             human: "AUTH refused: too many failures from this address client=192.0.2.7 user=alice",
             json: ["event": "auth_throttled", "client": "192.0.2.7", "user": "alice"]),
        Case(name: "AUTH refused: the password checks are saturated",
             event: .session(SessionEvent(client: "192.0.2.7", .authenticationUnavailable(user: nil))),
             human: "AUTH refused: the password checks are saturated client=192.0.2.7",
             json: ["event": "auth_unavailable", "client": "192.0.2.7"]),
    ]

    @Test(arguments: cases) func theHumanLine(_ example: Case) {
        #expect(HumanLogFormat.message(example.event) == example.human)
    }

    @Test(arguments: cases) func theJSONFields(_ example: Case) {
        let fields = JSONLogFormat.fields(example.event)
        #expect(Set(fields.map(\.key)).count == fields.count, "a key once")
        #expect(Dictionary(uniqueKeysWithValues: fields.map { ($0.key, $0.value) }) == example.json)
    }

    /// The whole JSON line: valid JSON, `msg` the human line, event fields beside it, and metadata that
    /// would take an event's field name moved aside.
    @Test(arguments: cases) func theJSONLine(_ example: Case) throws {
        let record = LogRecord(timestamp: .now(), level: .info, label: "petrel", source: "Delivery", message: "ignored",
                               event: example.event, metadata: ["status": "metadata", "client": "192.0.2.9"])
        let line = JSONLogFormat.line(record)
        #expect(!line.contains("\n") && !line.contains("\r"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["msg"] == example.human)
        for (key, value) in example.json { #expect(object[key] == value, "\(key)") }
        #expect(object[example.json["status"] == nil ? "status" : "meta.status"] == "metadata")
        #expect(object[example.json["client"] == nil ? "client" : "meta.client"] == "192.0.2.9")
    }

    @Test(arguments: cases) func theHumanLineIsOneLine(_ example: Case) {
        let record = LogRecord(timestamp: .now(), level: .info, label: "petrel", source: "Delivery", message: "ignored",
                               event: example.event, metadata: [:])
        let line = HumanLogFormat.line(record)
        #expect(line.hasSuffix("info petrel: [Delivery] " + example.human))
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0 == "\u{2028}" })
    }

    @Test func metadataValuesEscapeControlCharacters() {
        let record = LogRecord(timestamp: .now(), level: .warning, label: "petrel", source: "InboundServer", message: "AUTH failed",
                               event: nil, metadata: ["user": "a\u{1B}[31m\r\nb"])
        #expect(HumanLogFormat.line(record).hasSuffix(#"AUTH failed user="a\x1B[31m\r\nb""#))
    }
}

/// Events ride through swift-log to the handler, and are made only when their level is logged.
struct LogEventCarriageTests {
    final class Recorder: Sendable {
        private let metadata = NIOLockedValueBox<[Logger.Metadata]>([])
        func append(_ item: Logger.Metadata) { metadata.withLockedValue { $0.append(item) } }
        var recorded: [Logger.Metadata] { metadata.withLockedValue { $0 } }
    }

    struct RecordingHandler: LogHandler {
        let recorder: Recorder
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            recorder.append(event.metadata ?? [:])
        }
    }

    @Test func theHandlerGetsTheEventItself() {
        let recorder = Recorder()
        let logger = Logger(label: "test") { _ in RecordingHandler(recorder: recorder) }
        logger.log(.info, .messageRemoved(queueID: "65SHN2V1Q8K0TZ"))
        #expect(recorder.recorded.map(\.relayEvent) == [.messageRemoved(queueID: "65SHN2V1Q8K0TZ")])
    }

    @Test func anEventBelowTheLevelIsNeverMade() {
        let recorder = Recorder()
        let logger = Logger(label: "test") { _ in RecordingHandler(recorder: recorder) }
        let made = Recorder()
        func event() -> RelayEvent {
            made.append([:])
            return .messageRemoved(queueID: "65SHN2V1Q8K0TZ")
        }
        logger.log(.debug, event())
        #expect(made.recorded.isEmpty && recorder.recorded.isEmpty)
        logger.log(.info, event())
        #expect(made.recorded.count == 1 && recorder.recorded.count == 1)
    }
}
