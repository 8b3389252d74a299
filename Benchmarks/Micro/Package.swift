// swift-tools-version: 6.1
// Micro-benchmarks (ordo-one/benchmark): run with `swift package benchmark` in this folder.
import Foundation
import PackageDescription

/// A path dependency is identified by its folder's name, which depends on the checkout.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "OutboundWorkerBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "PipelineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PipelineKit", package: root),
                .product(name: "OutboundWorkerKit", package: root),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/PipelineBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
