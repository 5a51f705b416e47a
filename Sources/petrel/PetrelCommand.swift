import ArgumentParser
import PetrelConfig

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
    @Option(name: .long, help: "The configuration file (TOML). Without it: $PETREL_CONFIG, else /etc/petrel/petrel.toml if it exists, else the embedded defaults.")
    var config: String?

    /// `--config`, or where the CLI looks without it.
    var source: ConfigurationSource { ConfigurationSource.locate(option: config) }
}
