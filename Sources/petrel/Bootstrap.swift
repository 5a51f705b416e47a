import ArgumentParser
import Foundation
import Logging
import MailQueue
import PetrelConfig

/// Process-wide set-up shared by the subcommands.
enum Bootstrap {
    /// Logs go to standard error.
    static func makeLogger(label: String = "petrel") -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["PETREL_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            return handler
        }
        return Logger(label: label)
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
