/// A configuration problem, naming the file and the key, as an operator needs to fix it.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file, or `"(defaults)"` for the embedded configuration.
    public var file: String
    /// The dotted key (`inbound.max_recipients`), or `""` when the file as a whole is at fault.
    public var key: String
    public var message: String

    public init(file: String, key: String, message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String {
        key.isEmpty ? "\(file): \(message)" : "\(file): \(key): \(message)"
    }
}
