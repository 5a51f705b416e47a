// swift-tools-version:6.1
// libFuzzer targets for the pure protocol module, SMTPProtocol (issue 6, "The fuzzer").
//
// This package is separate from the main one so that the fuzz build (instrumented with
// `-sanitize=fuzzer,address`) neither touches the main package's manifest nor its build folder.
// `Sources/SMTPProtocol` is a symbolic link to the main package's `Sources/SMTPProtocol`: the module is
// compiled here from the very same files (SwiftPM only takes target paths inside the package).
//
// Build and run everything with `Fuzz/run` (see its header for the exact commands).
import PackageDescription

let fuzzTargets = ["FuzzCommandParser", "FuzzDataDecoder", "FuzzReplyParser", "FuzzAddressParser", "FuzzBase64", "FuzzMIMEConverter"]

let package = Package(
    name: "PetrelFuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .target(
            name: "SMTPProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // libFuzzer's driver entry point, called from each target's `main`.
        .target(name: "CFuzzerDriver"),
        .target(
            name: "FuzzSupport",
            dependencies: ["SMTPProtocol", "CFuzzerDriver", .product(name: "NIOCore", package: "swift-nio")]
        ),
    ] + fuzzTargets.map { name in
        .executableTarget(
            name: name,
            dependencies: ["SMTPProtocol", "FuzzSupport", .product(name: "NIOCore", package: "swift-nio")]
        )
    },
    swiftLanguageModes: [.v6]
)
