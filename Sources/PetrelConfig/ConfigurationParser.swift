import TOMLKit

extension PetrelConfiguration {
    /// Parses TOML text over the defaults. Every key must be known and every value valid; the error
    /// names the file and the key. The keys are those of `ConfigurationSection.all`.
    public static func parse(toml text: String, file: String) throws -> PetrelConfiguration {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(file: file, key: "", message: "TOML syntax error at \(error.source.begin): \(error.description)")
        }
        var configuration = PetrelConfiguration()
        var reader = TableReader(table: root, path: "", file: file)
        for section in ConfigurationSection.all {
            if section.name.isEmpty {
                try section.read(&reader, into: &configuration)
            } else if let entries = section.entries {
                try reader.anyTable(section.name) { key, value in entries.read(key, value, &configuration) }
            } else {
                try reader.table(section.name) { table in try section.read(&table, into: &configuration) }
            }
        }
        try reader.finish()
        return configuration
    }
}

extension ConfigurationSection {
    func read(_ reader: inout TableReader, into configuration: inout PetrelConfiguration) throws {
        for key in keys {
            try key.read(&reader, &configuration)
        }
        try check(reader, configuration)
    }
}

/// Reads one TOML table, remembering which keys were used so that an unknown key is reported.
struct TableReader {
    let table: TOMLTable
    let path: String
    let file: String
    private var used: Set<String> = []

    init(table: TOMLTable, path: String, file: String) {
        self.table = table
        self.path = path
        self.file = file
    }

    func error(_ key: String, _ message: String) -> ConfigurationError {
        ConfigurationError(file: file, key: path.isEmpty ? key : "\(path).\(key)", message: message)
    }

    /// Reads a string; `apply` returns `nil` when the value is not acceptable.
    mutating func string(_ key: String, expected: String = "a valid value", _ apply: (String) throws -> Void?) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let text = value.string else { throw error(key, "expected a string, got \(value.type)") }
        guard try apply(text) != nil else { throw error(key, "invalid value \"\(text)\"") }
    }

    mutating func list(_ key: String, _ apply: ([String]) throws -> Void?) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let array = value.array else { throw error(key, "expected an array of strings, got \(value.type)") }
        var strings: [String] = []
        for element in array {
            guard let text = element.string else { throw error(key, "expected an array of strings") }
            strings.append(text)
        }
        guard try apply(strings) != nil else {
            throw error(key, "invalid value [\(strings.map { "\"\($0)\"" }.joined(separator: ", "))]")
        }
    }

    mutating func positiveInteger(_ key: String, _ apply: (Int) -> Void) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let number = value.int, number > 0 else { throw error(key, "expected a positive integer, got \(value.debugDescription)") }
        apply(number)
    }

    mutating func size(_ key: String, _ apply: (Int) -> Void) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        if let number = value.int, number > 0 { return apply(number) }
        guard let text = value.string, let size = ValueFormats.parseSize(text), size > 0 else {
            throw error(key, "expected a size such as \"25MB\", \"512KB\" or 1000, got \(value.debugDescription)")
        }
        apply(size)
    }

    mutating func duration(_ key: String, allowZero: Bool, _ apply: (Duration) -> Void) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let text = value.string, let duration = ValueFormats.parseDuration(text), allowZero || duration > .zero else {
            throw error(key, "expected a duration such as \"30s\", \"5m\", \"4h\" or \"5d\", got \(value.debugDescription)")
        }
        apply(duration)
    }

    mutating func table(_ key: String, _ read: (inout TableReader) throws -> Void) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let subtable = value.table else { throw error(key, "expected a table ([\(key)])") }
        var reader = TableReader(table: subtable, path: path.isEmpty ? key : "\(path).\(key)", file: file)
        try read(&reader)
        try reader.finish()
    }

    /// A table whose keys are names the operator chooses (such as domains in `[routes]`); `read` returns
    /// `false` for an entry it refuses.
    mutating func anyTable(_ key: String, _ read: (String, any TOMLValueConvertible) throws -> Bool) throws {
        used.insert(key)
        guard let value = table[key] else { return }
        guard let subtable = value.table else { throw error(key, "expected a table ([\(key)])") }
        for name in subtable.keys.sorted() {
            guard let entry = subtable[name], try read(name, entry) else {
                throw ConfigurationError(file: file, key: "\(key).\(name)", message: "expected \"host:port\", got \(subtable[name]?.debugDescription ?? "nothing")")
            }
        }
    }

    /// Fails on the first key that was never asked for.
    func finish() throws {
        for key in table.keys.sorted() where !used.contains(key) {
            throw error(key, "unknown key")
        }
    }
}
