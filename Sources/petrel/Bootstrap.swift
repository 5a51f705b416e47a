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

    /// Loads the configuration or exits with a message that names the file and the key.
    static func loadConfiguration(_ option: ConfigOption) throws -> PetrelConfiguration {
        do {
            return try PetrelConfiguration.load(file: option.config)
        } catch let error as ConfigurationError {
            printError("configuration error: \(error)")
            throw ExitCode.failure
        }
    }

    static func openQueue(_ configuration: PetrelConfiguration) throws -> QueueStore {
        do {
            return try QueueStore.open(path: configuration.queue.path)
        } catch {
            printError("cannot open the queue at \(configuration.queue.path): \(error)")
            throw ExitCode.failure
        }
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("petrel: \(message)\n".utf8))
    }
}
