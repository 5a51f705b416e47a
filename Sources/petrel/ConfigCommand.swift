import ArgumentParser
import Authentication
import Delivery
import InboundServer
import PetrelConfig

/// `petrel config …`
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check the configuration, or print its reference.", subcommands: [Check.self, Reference.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration file (or the defaults): keys, values, the TLS files, the users file and the smarthost password file."
        )

        @OptionGroup var options: ConfigOption
        @Flag(help: "Print the effective configuration, defaults filled in.") var print = false

        func run() async throws {
            let configuration = try Bootstrap.loadConfiguration(options)
            var delivery = DeliverySettings(configuration)
            _ = try ServeCommand.loadSecurity(configuration, delivery: &delivery)
            if print {
                Swift.print(configuration.renderTOML(), terminator: "")
            } else {
                Swift.print("\(configuration.sourceFile ?? "(defaults)"): ok")
            }
        }
    }

    struct Reference: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every configuration key with its default and what it does (the README's table)."
        )

        func run() {
            Swift.print(PetrelConfiguration.reference, terminator: "")
        }
    }
}
