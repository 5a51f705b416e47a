import Foundation
import LogEvents
import Logging
import NIOConcurrencyHelpers
import PetrelConfig

/// The process's one log handler: each event becomes one line on standard error, human-readable or JSON
/// as `[log] format` says. The format is read at every event, so loggers made before the configuration
/// was loaded (or before a reload) follow it too.
struct PetrelLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, logLevel: Logger.Level, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            fields.merge(provided) { _, new in new }
        }
        if let explicit = event.metadata, !explicit.isEmpty {
            fields.merge(explicit) { _, new in new }
        }
        if let error = event.error, fields["error"] == nil {
            fields["error"] = "\(error)"
        }
        let relayEvent = fields.relayEvent
        if relayEvent != nil { fields[RelayEvent.metadataKey] = nil }
        let record = LogRecord(
            timestamp: LogTimestamp.now(), level: event.level, label: label, source: event.source,
            message: event.message.description, event: relayEvent, metadata: fields
        )
        let line: String
        switch LogOutput.format {
        case .human: line = HumanLogFormat.line(record)
        case .json: line = JSONLogFormat.line(record)
        }
        StandardErrorWriter.shared.writeLine(line, priority: record.level.syslogPriority)
    }
}

/// One log event, ready to be rendered.
struct LogRecord {
    var timestamp: LogTimestamp
    var level: Logger.Level
    var label: String
    var source: String
    /// The message as logged; a relay event's line is rendered from `event` instead.
    var message: String
    /// The relay event the call carried: both formats render it, each in its own way.
    var event: RelayEvent?
    var metadata: Logger.Metadata

    /// The metadata as `key`/text pairs sorted by key: a nested dictionary becomes `key.inner`, a list its
    /// elements joined by commas.
    var flatMetadata: [(key: String, value: String)] {
        var pairs: [(key: String, value: String)] = []
        func add(_ key: String, _ value: Logger.MetadataValue) {
            switch value {
            case .string(let text): pairs.append((key, text))
            case .stringConvertible(let convertible): pairs.append((key, convertible.description))
            case .array(let values): pairs.append((key, values.map(\.description).joined(separator: ",")))
            case .dictionary(let inner):
                for (innerKey, innerValue) in inner { add("\(key).\(innerKey)", innerValue) }
            }
        }
        for (key, value) in metadata { add(key, value) }
        return pairs.sorted { $0.key < $1.key }
    }
}

/// The process-wide log set-up: `LoggingSystem.bootstrap` once, and the format, which the configuration
/// sets after it is loaded (and again on reload).
enum LogOutput {
    private static let settings = LockedFormat()

    /// The format of the lines written from now on.
    static var format: PetrelConfiguration.Log.Format {
        get { settings.value }
        set { settings.value = newValue }
    }

    /// Installs `PetrelLogHandler` for every logger; later calls do nothing. The level comes from
    /// `$PETREL_LOG_LEVEL` (trace, debug, info, notice, warning, error, critical), `info` by default.
    static func bootstrap() {
        _ = bootstrapped
    }

    private static let bootstrapped: Void = {
        let level = ProcessInfo.processInfo.environment["PETREL_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            PetrelLogHandler(label: label, logLevel: level)
        }
    }()

    private final class LockedFormat: Sendable {
        private let format = NIOLockedValueBox(PetrelConfiguration.Log.Format.human)

        var value: PetrelConfiguration.Log.Format {
            get { format.withLockedValue { $0 } }
            set { format.withLockedValue { $0 = newValue } }
        }
    }
}

extension Logger.Level {
    /// The syslog priority (RFC 5424) that journald files the line under.
    var syslogPriority: Int {
        switch self {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
