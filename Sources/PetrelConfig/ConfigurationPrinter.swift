import TOMLKit

extension PetrelConfiguration {
    /// The effective configuration as TOML, every key with its value, defaults filled in
    /// (`petrel config check --print`). Parsing the output gives the same configuration.
    public func renderTOML() -> String {
        var lines: [String] = []
        if let sourceFile { lines.append("# effective configuration of \(sourceFile)") } else { lines.append("# embedded defaults") }
        for section in ConfigurationSection.all {
            if !section.name.isEmpty {
                lines.append("")
                lines.append("[\(section.name)]")
            }
            for key in section.keys {
                lines.append("\(key.name) = \(key.render(self))")
            }
            for (key, value) in section.entries?.render(self) ?? [] {
                lines.append("\(key) = \(value)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The configuration reference: every key with its default and what it does, the TOML block of
    /// README.md's "Configuration" section (`petrel config reference`; a test keeps the README equal).
    public static var reference: String {
        let defaults = PetrelConfiguration()
        func line(_ text: String, _ doc: String) -> String {
            guard !doc.isEmpty else { return text }
            let column = 38
            return (text.count < column ? text.padding(toLength: column, withPad: " ", startingAt: 0) : text + "   ") + "# " + doc
        }
        var lines: [String] = []
        for section in ConfigurationSection.all {
            if !section.name.isEmpty {
                lines.append(line("[\(section.name)]", section.doc))
            }
            for key in section.keys {
                lines.append(line("\(key.name) = \(key.example ?? key.render(defaults))", key.doc))
            }
            if let entries = section.entries {
                lines.append(entries.example)
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// TOML text for one value, written by TOMLKit so that any string (quotes, control characters) comes out
/// as valid TOML.
enum TOMLText {
    static func string(_ text: String) -> String {
        let table = TOMLTable()
        table["v"] = text
        var line = Substring(table.convert(to: .toml, options: [.allowUnicodeStrings]))
        while line.last == "\n" { line = line.dropLast() }
        precondition(line.hasPrefix("v = "), "TOMLKit wrote an unexpected line: \(line)")
        return String(line.dropFirst(4))
    }

    static func list(_ items: [String]) -> String {
        "[" + items.map(string).joined(separator: ", ") + "]"
    }
}
