import ArgumentParser
import Foundation
import Logging
import MailQueue
import PetrelConfig

/// Process-wide set-up shared by the subcommands.
enum Bootstrap {
    /// Logs go to standard error, one line per event, in the human format until `applyLogSettings` says
    /// otherwise. Safe to call more than once.
    static func makeLogger(label: String = "petrel") -> Logger {
        LogOutput.bootstrap()
        return Logger(label: label)
    }

    /// Makes every logger, including those made earlier, follow the configuration's `[log]` section.
    /// Called once the configuration is loaded, and again after a reload.
    static func applyLogSettings(_ configuration: PetrelConfiguration) {
        LogOutput.format = configuration.log.format
    }

    /// SIGHUP asks for a reload. Until the reload service has taken the signal over, one that arrives
    /// (an early `systemctl reload`, a stray `kill -HUP`) must not end the relay, as its default action would.
    static func ignoreHangUpUntilReloadIsReady() {
        signal(SIGHUP, SIG_IGN)
    }

    /// Loads the configuration `option` names (see ``ConfigOption/source``) or exits with a message that
    /// names the file and the key.
    static func loadConfiguration(_ option: ConfigOption) throws -> PetrelConfiguration {
        do {
            return try PetrelConfiguration.load(file: option.source.file)
        } catch let error as ConfigurationError {
            printError("configuration error: \(error)")
            throw ExitCode.failure
        }
    }

    /// Opens the queue, creating it when there is none: for `serve`.
    static func openQueue(_ configuration: PetrelConfiguration) throws -> QueueStore {
        do {
            return try QueueStore.open(path: configuration.queue.path)
        } catch {
            printError("cannot open the queue at \(configuration.queue.path): \(error)")
            throw ExitCode.failure
        }
    }

    /// Opens the queue the configuration names, or exits saying which configuration named it when there
    /// is none there: the queue commands never create one (an empty queue in the wrong folder would look
    /// like a queue with nothing in it).
    static func openExistingQueue(_ configuration: PetrelConfiguration, _ option: ConfigOption) throws -> QueueStore {
        guard FileManager.default.fileExists(atPath: configuration.queue.path) else {
            printError("no queue at \(configuration.queue.path): queue.path of \(option.source); `petrel serve` creates it")
            throw ExitCode.failure
        }
        return try openQueue(configuration)
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("petrel: \(message)\n".utf8))
    }
}
