import Foundation
import Testing
@testable import PetrelConfig

/// The reference generated from the key declarations: README.md shows it, and it is a valid file.
struct ConfigurationReferenceTests {
    /// The TOML block of README.md's "## Configuration" section.
    static func readmeBlock() throws -> String {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md").standardized
        let readme = try String(contentsOf: file, encoding: .utf8)
        let section = try #require(readme.range(of: "\n## Configuration\n"))
        let open = try #require(readme.range(of: "```toml\n", range: section.upperBound..<readme.endIndex))
        let close = try #require(readme.range(of: "```\n", range: open.upperBound..<readme.endIndex))
        return String(readme[open.upperBound..<close.lowerBound])
    }

    @Test func readmeShowsTheReference() throws {
        // When this fails, replace the README's block with the output of `petrel config reference`.
        #expect(try Self.readmeBlock() == PetrelConfiguration.reference)
    }

    @Test func referenceIsTheDefaults() throws {
        var parsed = try PetrelConfiguration.parse(toml: PetrelConfiguration.reference, file: "README.md")
        #expect(parsed.hostname == "relay.example.net")
        parsed.hostname = PetrelConfiguration.defaults.hostname
        // smarthost_tls is shown resolved, as `config check --print` shows it.
        #expect(parsed.delivery.smarthostTLS == .opportunistic)
        parsed.delivery.smarthostTLS = nil
        #expect(parsed == PetrelConfiguration.defaults)
    }

    @Test func everyKeyIsDocumentedOnce() {
        for section in ConfigurationSection.all {
            let names = section.keys.map(\.name)
            #expect(Set(names).count == names.count, "\(section.name)")
            for name in names {
                #expect(PetrelConfiguration.reference.contains("\n\(name) = ") || PetrelConfiguration.reference.hasPrefix("\(name) = "))
            }
        }
    }

    @Test func printedValuesWithControlCharactersAreValidTOML() throws {
        var configuration = PetrelConfiguration()
        configuration.delivery.smarthostUser = "user\u{1}\"\\\n\tname"
        configuration.tls.certificate = "/etc/pé\u{7f}trel/cert.pem"
        configuration.tls.key = "/etc/petrel/key.pem"
        configuration.routes["a.example"] = .init(host: "10.0.0.5", port: 25)
        let printed = configuration.renderTOML()
        var again = try PetrelConfiguration.parse(toml: printed, file: "printed.toml")
        again.delivery.smarthostTLS = configuration.delivery.smarthostTLS
        #expect(again == configuration)
    }

    @Test(arguments: [(25 * 1024 * 1024, "25MB"), (512 * 1024, "512KB"), (1000, "1000"), (1024 * 1024 + 1, "1048577")])
    func formatsSizesAsTheFileWritesThem(size: Int, text: String) {
        #expect(ValueFormats.format(size: size) == text)
        #expect(ValueFormats.parseSize(text) == size)
    }
}
