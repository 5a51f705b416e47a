import ArgumentParser

/// `petrel`: the relay and its operator's tools.
@main
struct PetrelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "petrel",
        abstract: "Petrel: an SMTP relay and smart host.",
        subcommands: [ServeCommand.self, QueueCommand.self, UserCommand.self, ConfigCommand.self]
    )
}

/// The option every subcommand takes, so that the CLI finds the same queue as the server.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The configuration file (TOML). Without it, the embedded defaults apply.")
    var config: String?
}
