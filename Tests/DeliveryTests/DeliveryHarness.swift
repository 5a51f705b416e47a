import DNSResolver
import Foundation
import Logging
import MailQueue
import NIOCore
import PetrelConfig
import PetrelTestSupport
import SMTPProtocol
import ServiceLifecycle
@testable import Delivery

/// A queue, a real DNS server and the delivery engine running in a `ServiceGroup`, for end-to-end tests.
///
/// The engine runs on ``clock``: its timers fire and its dates move only when a test advances it (a retry,
/// an expiry), and ``waitUntil(_:timeout:_:)`` looks again each time the engine has written results.
struct DeliveryHarness {
    let store: QueueStore
    let committer: GroupCommitter
    let directory: String
    let clock: TestClock
    let recordings: EventCount
    /// The committer and the scheduler; a test may shut it down early.
    let serviceGroup: ServiceGroup

    /// Runs `body` with the engine delivering; `configure` adjusts the configuration. `afterShutdown` runs
    /// once the service group has ended, before the queue's directory is removed.
    static func run(
        dns: DNSTestServer,
        mxPort: Int,
        configure: (inout PetrelConfiguration) -> Void = { _ in },
        afterShutdown: (DeliveryHarness) async throws -> Void = { _ in },
        _ body: (DeliveryHarness) async throws -> Void
    ) async throws {
        let directory = NSTemporaryDirectory() + "petrel-delivery-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = PetrelConfiguration()
        configuration.hostname = "relay.test"
        configuration.queue.path = directory + "/queue.sqlite"
        configuration.delivery.dnsServers = [dns.address]
        configuration.delivery.mxPort = mxPort
        configuration.delivery.retryMin = .seconds(1)
        configuration.delivery.retryMax = .seconds(2)
        configuration.delivery.connectTimeout = .seconds(2)
        configuration.delivery.commandTimeout = .seconds(5)
        configuration.delivery.dataTimeout = .seconds(5)
        configure(&configuration)
        let store = try QueueStore.open(path: configuration.queue.path)
        let logger = Logger(label: "delivery-test")
        var settings = DeliverySettings(configuration)
        try settings.loadTLS(configuration)
        settings.idlePoll = .milliseconds(200)
        let resolver = try SystemResolver(servers: configuration.delivery.dnsServers, timeout: .seconds(1), attempts: 1)
        let committer = GroupCommitter(store: store, logger: logger)
        let clock = TestClock()
        let recordings = EventCount()
        let scheduler = DeliveryScheduler(
            store: store, committer: committer, settings: settings, resolver: resolver, logger: logger,
            clock: clock, wallTime: clock.wallTime, afterRecording: recordings.signal
        )
        let group = ServiceGroup(services: [committer, scheduler], logger: logger)
        let harness = DeliveryHarness(store: store, committer: committer, directory: directory, clock: clock, recordings: recordings,
                                      serviceGroup: group)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(harness)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        try await afterShutdown(harness)
    }

    /// Queues a message as the inbound server would, and returns its queue id.
    /// How a test's text is stored: inline, or as a spool file, whole or damaged.
    enum Storage {
        case inline
        case spooled
        /// A spool file with only the first half of the text.
        case spooledTruncated
        /// A directory where the spool file should be: it opens, and `read(2)` fails with `EISDIR`.
        case spooledAsDirectory
    }

    /// `text` replaces the default text after the trace header.
    @discardableResult
    func enqueue(from sender: String?, to recipients: [String], subject: String = "test", text: String? = nil,
                 storage: Storage = .inline,
                 configure: (inout Envelope) -> Void = { _ in }) async throws -> String {
        let queueID = QueueID.make()
        func mailbox(_ address: String) -> Mailbox {
            let at = address.lastIndex(of: "@")!
            return Mailbox(localPart: String(address[..<at]), domain: String(address[address.index(after: at)...]))
        }
        var envelope = Envelope(
            reversePath: sender.map(mailbox),
            parameters: MailParameters(),
            recipients: recipients.map { EnvelopeRecipient(mailbox: mailbox($0)) },
            client: ClientIdentity(address: "127.0.0.1", greetingName: "client.test", protocolName: "ESMTP")
        )
        configure(&envelope)
        let text = text ?? "From: <\(sender ?? "")>\r\nSubject: \(subject)\r\nMessage-ID: <\(queueID)@client.test>\r\n\r\nHello.\r\n.dot line\r\n"
        var content = IncomingMessage.Content.inline(ByteBuffer(string: text))
        let path = (store.spoolDirectory as NSString).appendingPathComponent(queueID)
        switch storage {
        case .inline: break
        case .spooled: try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        case .spooledTruncated: try Data(text.utf8.prefix(text.utf8.count / 2)).write(to: URL(fileURLWithPath: path))
        case .spooledAsDirectory: try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        }
        if storage != .inline { content = .spooled(fileName: queueID) }
        let message = IncomingMessage(
            queueID: queueID, envelope: envelope, traceHeaders: ByteBuffer(string: "Received: from client.test\r\n"),
            content: content, contentSize: text.utf8.count,
            arrivedAt: clock.date, expiresAt: clock.date.addingTimeInterval(Self.queueLifetime)
        )
        try await committer.enqueue(message)
        return queueID
    }

    /// Moves the engine's clock forward once its feeder sleeps on it (the only task that does): a move
    /// while the feeder looks at the queue would be lost, its next sleep starting from the moved time.
    func advance(by duration: Duration) async {
        await clock.waitForSleeper()
        clock.advance(by: duration)
    }

    /// How long an enqueued message may stay in the queue.
    static let queueLifetime: TimeInterval = 3600

    /// Returns once `condition` holds, looking again after each write of results by the engine; fails
    /// after `timeout` of real time (a bound for a broken test, not a timer the test waits for).
    func waitUntil(_ what: String, timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        let recordings = self.recordings
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The bound: one more signal at the deadline, so that the loop looks a last time and gives up.
            group.addTask {
                do {
                    try await Task.sleep(until: deadline)
                    recordings.signal()
                } catch {}  // the condition held first
            }
            defer { group.cancelAll() }
            while true {
                let seen = recordings.count
                if try await condition() { return }
                guard ContinuousClock.now < deadline else { throw HarnessTimeout(what: what) }
                await recordings.wait(after: seen)
            }
        }
    }
}

struct HarnessTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}
