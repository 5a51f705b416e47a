import Foundation

/// Which configuration a command reads when `--config` is not given, so that the CLI finds the queue the
/// server uses: `$PETREL_CONFIG`, then `/etc/petrel/petrel.toml` when it exists, then the embedded defaults.
public enum ConfigurationSource: Equatable, Sendable, CustomStringConvertible {
    case option(String)
    case environment(String)
    case system(String)
    case defaults

    public static let environmentVariable = "PETREL_CONFIG"
    public static let systemFile = "/etc/petrel/petrel.toml"

    public static func locate(
        option: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        fileExists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }
    ) -> ConfigurationSource {
        if let option { return .option(option) }
        if let file = environment[environmentVariable], !file.isEmpty { return .environment(file) }
        if fileExists(systemFile) { return .system(systemFile) }
        return .defaults
    }

    /// The file to load; `nil`: the embedded defaults.
    public var file: String? {
        switch self {
        case .option(let file), .environment(let file), .system(let file): file
        case .defaults: nil
        }
    }

    /// How it was chosen, for a message that must say which configuration named a missing queue.
    public var description: String {
        switch self {
        case .option(let file): "\(file) (--config)"
        case .environment(let file): "\(file) (from $\(Self.environmentVariable))"
        case .system(let file): "\(file) (no --config, no $\(Self.environmentVariable))"
        case .defaults: "the embedded defaults (no --config, no $\(Self.environmentVariable), no \(Self.systemFile))"
        }
    }
}
