import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Testing
@testable import MailQueue

/// The queue gauges as a service: a shutdown that stops a refresh half-way is not a problem to report.
struct QueueGaugesTests {
    /// Keeps the level and message of every event.
    struct RecordingLogHandler: LogHandler {
        let events: NIOLockedValueBox<[(Logger.Level, String)]>
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            events.withLockedValue { $0.append((event.level, event.message.description)) }
        }
    }

    @Test func aShutdownDuringARefreshLogsNoWarning() async throws {
        let queue = try QueueAdministrationTests.Fixture()
        defer { queue.remove() }
        for _ in 0..<20 { try queue.add() }
        let events = NIOLockedValueBox<[(Logger.Level, String)]>([])
        let logger = Logger(label: "gauges") { _ in RecordingLogHandler(events: events) }
        let quiet = Logger(label: "group") { _ in SwiftLogNoOpLogHandler() }
        // Shut down at once, again and again: the first refresh is under way when the cancellation comes.
        for _ in 0..<30 {
            let group = ServiceGroup(services: [QueueGauges(store: queue.store, logger: logger)], logger: quiet)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                await Task.yield()
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
        let warnings = events.withLockedValue { $0 }.filter { $0.0 >= .warning }.map(\.1)
        #expect(warnings.isEmpty)
    }
}
