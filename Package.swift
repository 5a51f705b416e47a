// swift-tools-version:6.1
import PackageDescription

// Linux only: the relay calls glibc directly (libresolv for DNS, libcrypt for yescrypt), so no Apple
// platform is claimed.

let package = Package(
    name: "Petrel",
    products: [
        .executable(name: "petrel", targets: ["petrel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // Pure SMTP grammar and session state machines: no sockets, no files.
        .target(
            name: "SMTPProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // The durable queue on SQLite (GRDB). Its schema is the SQL in /migrations.
        .target(
            name: "MailQueue",
            dependencies: [
                "SMTPProtocol", "LogEvents",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [
                .embedInCode("migrations/0001_queue.sql"),
                .embedInCode("migrations/0002_queue_admin.sql"),
                .embedInCode("migrations/0003_sender_notices.sql"),
                .embedInCode("migrations/0004_operator_audit.sql"),
            ]
        ),
        // What the relay logs about messages, as typed events that the log handler renders as a human line
        // and as JSON. Only swift-log, so that every layer that logs can make them.
        .target(
            name: "LogEvents",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        // The system's libcrypt (libxcrypt): yescrypt password hashes for SMTP AUTH users.
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt"),
        // glibc's resolver library (res_nquery, ns_initparse, ns_parserr).
        .systemLibrary(name: "CResolv", path: "Sources/CResolv"),
        // DNS lookups (MX, A, AAAA) through the system resolver library, cached for their TTL.
        .target(
            name: "DNSResolver",
            dependencies: [
                "CResolv",
                "PetrelConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The configuration file: TOML, validated, with embedded defaults.
        .target(
            name: "PetrelConfig",
            dependencies: [
                "SMTPProtocol",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        // SwiftNIO glue shared by the server and the client: the connection gate (timeouts, shutdown).
        .target(
            name: "SMTPTransport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // SMTP AUTH users: the users file and yescrypt password hashes.
        .target(
            name: "Authentication",
            dependencies: [
                "CCrypt",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The SwiftNIO layer and the inbound `Service`.
        .target(
            name: "InboundServer",
            dependencies: [
                "SMTPProtocol", "SMTPTransport", "MailQueue", "PetrelConfig", "Authentication", "DNSResolver", "LogEvents",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The delivery engine: routing, the SMTP client, retries, expiry and bounces, as a `Service`.
        .target(
            name: "Delivery",
            dependencies: [
                "SMTPProtocol", "SMTPTransport", "MailQueue", "PetrelConfig", "DNSResolver", "LogEvents",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "petrel",
            dependencies: [
                "SMTPProtocol", "MailQueue", "PetrelConfig", "InboundServer", "Delivery", "DNSResolver", "Authentication", "LogEvents",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Helpers the tests share: a real DNS server (dnsmasq) on a loopback high port.
        .target(
            name: "PetrelTestSupport",
            dependencies: [.product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            path: "Tests/PetrelTestSupport"
        ),
        .testTarget(name: "SMTPProtocolTests", dependencies: ["SMTPProtocol"]),
        .testTarget(
            name: "DNSResolverTests",
            dependencies: [
                "DNSResolver", "PetrelTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "MailQueueTests",
            dependencies: ["MailQueue", "PetrelTestSupport", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        .testTarget(name: "PetrelConfigTests", dependencies: ["PetrelConfig"]),
        .testTarget(
            name: "AuthenticationTests",
            dependencies: [
                "Authentication", "PetrelTestSupport",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The executable's own parts: the log formats.
        .testTarget(
            name: "PetrelTests",
            dependencies: [
                "petrel", "LogEvents",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "DeliveryTests",
            dependencies: [
                "Delivery", "DNSResolver", "MailQueue", "PetrelConfig", "SMTPProtocol", "PetrelTestSupport", "InboundServer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "InboundServerTests",
            dependencies: [
                "InboundServer", "MailQueue", "PetrelConfig", "SMTPProtocol", "SMTPTransport", "DNSResolver", "PetrelTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
