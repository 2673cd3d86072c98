// swift-tools-version: 6.1
import PackageDescription

/// Settings shared by every target: Swift 6 language mode with complete concurrency checking,
/// plus the upcoming features the project relies on. Spelling matters: an unknown feature name
/// is ignored silently.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "saga-orchestrator",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SagaCore", targets: ["SagaCore"]),
        .library(name: "SagaDefinitions", targets: ["SagaDefinitions"]),
        .library(name: "SagaProtocol", targets: ["SagaProtocol"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "SagaStore", targets: ["SagaStore"]),
        .library(name: "SagaEngine", targets: ["SagaEngine"]),
        .library(name: "SagaParticipant", targets: ["SagaParticipant"]),
        .executable(name: "kafka-mock-broker", targets: ["kafka-mock-broker"]),
        .executable(name: "sagad", targets: ["sagad"]),
        .executable(name: "inventory-participant", targets: ["inventory-participant"]),
        .executable(name: "payments-participant", targets: ["payments-participant"]),
        .executable(name: "shipping-participant", targets: ["shipping-participant"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(
            url: "https://github.com/apple/swift-configuration.git", from: "1.4.0",
            traits: [.defaults, "CommandLineArguments", "YAML"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
    ],
    targets: [
        // The pure core: definitions, the saga state machine, retry policies, durations, JSON values.
        // Imports nothing but the standard library and Foundation.
        .target(name: "SagaCore"),
        // Reads saga definition files (YAML or JSON) and validates them into `SagaDefinition`s.
        .target(
            name: "SagaDefinitions",
            dependencies: ["SagaCore", .product(name: "Yams", package: "Yams")]
        ),
        // The wire protocol: every message as a versioned JSON document in a CloudEvents 1.0
        // envelope; decoding errors name the field. protocols/ documents it.
        .target(name: "SagaProtocol", dependencies: ["SagaCore"]),
        // librdkafka, the C Kafka client (Debian's librdkafka-dev), with its mock cluster.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // A small async Swift wrapper over librdkafka: producer, consumer, admin, mock cluster.
        // Knows nothing of sagas.
        .target(
            name: "Kafka",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")]
        ),
        // A Kafka-protocol broker for development and tests: librdkafka's mock cluster in a process.
        .executableTarget(
            name: "kafka-mock-broker",
            dependencies: ["Kafka", .product(name: "Logging", package: "swift-log")]
        ),
        // Every saga's state in PostgreSQL (postgres-nio): migrations, sagas, history, outbox,
        // inbox, timers, pending signals; one transaction per batch of events.
        .target(
            name: "SagaStore",
            dependencies: [
                "SagaCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The orchestrator's services: the inbound processor, the outbox relay and the timer
        // service, every state change through one path (the store's batch and the state machine).
        .target(
            name: "SagaEngine",
            dependencies: [
                "SagaCore", "SagaProtocol", "SagaStore", "Kafka",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // An SDK for Swift participant services: commands in, the participant contract kept with
        // a table of replies in the participant's own PostgreSQL, replies out.
        .target(
            name: "SagaParticipant",
            dependencies: [
                "SagaCore", "SagaProtocol", "Kafka",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The example participants of the order-fulfillment saga (the demo and the end-to-end
        // tests run them), on the SagaParticipant SDK.
        .target(
            name: "ExampleParticipants",
            dependencies: [
                "SagaCore", "SagaProtocol", "SagaParticipant", "SagaStore", "Kafka",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "examples/participants/Shared"
        ),
        .executableTarget(
            name: "inventory-participant",
            dependencies: [
                "ExampleParticipants", "SagaCore", "SagaParticipant", "SagaProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "examples/participants/inventory"
        ),
        .executableTarget(
            name: "payments-participant",
            dependencies: [
                "ExampleParticipants", "SagaCore", "SagaParticipant", "SagaProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "examples/participants/payments"
        ),
        .executableTarget(
            name: "shipping-participant",
            dependencies: [
                "ExampleParticipants", "SagaCore", "SagaParticipant", "SagaProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "examples/participants/shipping"
        ),
        // The orchestrator service: configuration, definitions, the engine, metrics and health
        // endpoints, graceful shutdown.
        .executableTarget(
            name: "sagad",
            dependencies: [
                "SagaCore", "SagaProtocol", "SagaStore", "SagaEngine", "SagaDefinitions", "Kafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        // What the integration tests share: deadlines on their waits, a database of their own.
        .target(
            name: "TestSupport",
            dependencies: [
                "SagaStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "SagaStoreTests",
            dependencies: [
                "SagaStore", "SagaCore", "TestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "KafkaTests",
            dependencies: ["Kafka", "TestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "SagaCoreTests",
            dependencies: ["SagaCore", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "SagaEngineTests",
            dependencies: [
                "SagaEngine", "SagaStore", "SagaProtocol", "SagaCore", "SagaDefinitions", "Kafka", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SagaParticipantTests",
            dependencies: [
                "SagaParticipant", "SagaProtocol", "SagaCore", "SagaStore", "Kafka", "TestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "SagaCore", "SagaProtocol", "SagaStore", "Kafka", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SagaProtocolTests",
            dependencies: ["SagaProtocol", "SagaCore"]
        ),
        .testTarget(
            name: "SagaDefinitionsTests",
            dependencies: ["SagaCore", "SagaDefinitions"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + swiftSettings
}
