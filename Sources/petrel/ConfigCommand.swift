import ArgumentParser

/// `petrel config …`
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check the configuration.", subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a configuration file (or the defaults).")

        @OptionGroup var options: ConfigOption

        func run() async throws {
            let configuration = try Bootstrap.loadConfiguration(options)
            print("\(configuration.sourceFile ?? "(defaults)"): ok")
        }
    }
}
