// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live in their own package so that building and testing the product does not build the
// benchmark harness. Run them with `scripts/bench.sh` (see BENCHMARKS.md).
let package = Package(
    name: "SagaBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "saga-orchestrator", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // The workloads the benchmarks measure, shared by the harness and the plain loop.
        .target(
            name: "SagaBenchmarkSupport",
            dependencies: [.product(name: "SagaCore", package: "saga-orchestrator")],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("MemberImportVisibility")]
        ),
        // A plain loop over the same workload, for instruction counts under callgrind.
        .executableTarget(
            name: "saga-machine-loop",
            dependencies: ["SagaBenchmarkSupport", .product(name: "SagaCore", package: "saga-orchestrator")],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("MemberImportVisibility")]
        ),
        // The Kafka wrapper's throughput against librdkafka's C API (Benchmarks/c), run by
        // scripts/bench-kafka.sh.
        .executableTarget(
            name: "kafka-throughput",
            dependencies: [
                .product(name: "Kafka", package: "saga-orchestrator"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("MemberImportVisibility")]
        ),
        // Saga transitions per second through SagaStore at several batch sizes, run with pgbench
        // on the same server by scripts/bench-store.sh.
        .executableTarget(
            name: "store-throughput",
            dependencies: [
                .product(name: "SagaStore", package: "saga-orchestrator"),
                .product(name: "SagaCore", package: "saga-orchestrator"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("MemberImportVisibility")]
        ),
        .executableTarget(
            name: "SagaCoreBenchmarks",
            dependencies: [
                "SagaBenchmarkSupport",
                .product(name: "SagaCore", package: "saga-orchestrator"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SagaCoreBenchmarks",
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("MemberImportVisibility"),
            ],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
