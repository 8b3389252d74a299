// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "outbound-worker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "outbound-worker", targets: ["OutboundWorker"]),
        .library(name: "PipelineKit", targets: ["PipelineKit"]),
        .library(name: "OutboundWorkerKit", targets: ["OutboundWorkerApp", "ValidatePlugin", "RedisPlugin", "IdempotencyPlugin", "WhatsAppPlugin", "RabbitMQPlugin", "EventsPlugin", "WebhookPlugin", "SuppressPlugin", "AccountLimitsPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // OTLP over HTTP only: the gRPC exporter's packages are not built.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // C libraries through pkg-config.
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),

        // I/O clients.
        .target(name: "AMQPClient", dependencies: ["CRabbitMQ", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .target(name: "RedisClient", dependencies: ["CHiredis", .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: strict),

        // The runtime: knows no plugin and no I/O client.
        .target(
            name: "PipelineKit",
            dependencies: [
                "Yams",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),

        // Plugins.
        .target(name: "ValidatePlugin", dependencies: ["PipelineKit"], path: "plugins/Validate", swiftSettings: strict),
        .target(
            name: "RedisPlugin",
            dependencies: ["PipelineKit", "RedisClient", .product(name: "Metrics", package: "swift-metrics"), .product(name: "Crypto", package: "swift-crypto")],
            path: "plugins/Redis",
            swiftSettings: strict
        ),
        .target(
            name: "IdempotencyPlugin",
            dependencies: ["PipelineKit", "RedisPlugin", "RedisClient", .product(name: "Metrics", package: "swift-metrics")],
            path: "plugins/Idempotency",
            swiftSettings: strict
        ),
        .target(
            name: "WhatsAppPlugin",
            dependencies: [
                "PipelineKit", "ValidatePlugin", "RedisPlugin", "RedisClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "plugins/WhatsApp",
            swiftSettings: strict
        ),
        .target(name: "RabbitMQPlugin", dependencies: ["PipelineKit", "AMQPClient", .product(name: "Metrics", package: "swift-metrics")], path: "plugins/RabbitMQ", swiftSettings: strict),
        .target(name: "EventsPlugin", dependencies: ["PipelineKit", "AMQPClient", "RabbitMQPlugin", .product(name: "Metrics", package: "swift-metrics")], path: "plugins/Events", swiftSettings: strict),
        .target(
            name: "WebhookPlugin",
            dependencies: [
                "PipelineKit", "RedisPlugin", "RedisClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "plugins/Webhook",
            swiftSettings: strict
        ),
        .target(
            name: "SuppressPlugin",
            dependencies: ["PipelineKit", "RedisPlugin", "ValidatePlugin", "WhatsAppPlugin", "WebhookPlugin", .product(name: "Metrics", package: "swift-metrics")],
            path: "plugins/Suppress",
            swiftSettings: strict
        ),
        .target(
            name: "AccountLimitsPlugin",
            dependencies: ["PipelineKit", "WhatsAppPlugin", "WebhookPlugin", .product(name: "Metrics", package: "swift-metrics")],
            path: "plugins/AccountLimits",
            swiftSettings: strict
        ),

        // The application: CLI commands, health server, wiring of built-ins.
        .target(
            name: "OutboundWorkerApp",
            dependencies: [
                "PipelineKit", "ValidatePlugin", "RedisPlugin", "IdempotencyPlugin", "WhatsAppPlugin", "RabbitMQPlugin", "EventsPlugin", "WebhookPlugin", "SuppressPlugin", "AccountLimitsPlugin", "AMQPClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            swiftSettings: strict,
            plugins: ["BuildInfo"]
        ),
        .plugin(name: "BuildInfo", capability: .buildTool(), path: "Plugins/BuildInfo"),
        .executableTarget(name: "OutboundWorker", dependencies: ["OutboundWorkerApp"], swiftSettings: strict),

        // Benchmarks run on demand by scripts/bench (not by the tests).
        .executableTarget(
            name: "bench-baseline",
            dependencies: ["AMQPClient", "RedisClient", .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOSSL", package: "swift-nio-ssl")],
            path: "Benchmarks/Baseline",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bench-e2e",
            dependencies: ["AMQPClient", "RedisClient", "PipelineKit", "TestSupport", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "NIOCore", package: "swift-nio")],
            path: "Benchmarks/EndToEnd",
            swiftSettings: strict
        ),

        // Tests.
        .target(
            name: "TestSupport",
            dependencies: [
                "PipelineKit", "AMQPClient", "RedisClient", "RedisPlugin",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .testTarget(name: "PipelineKitTests", dependencies: ["PipelineKit", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ValidatePluginTests", dependencies: ["ValidatePlugin", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "WhatsAppPluginTests", dependencies: ["WhatsAppPlugin", "ValidatePlugin", "RedisPlugin", "RedisClient", "TestSupport", .product(name: "AsyncHTTPClient", package: "async-http-client")], swiftSettings: strict),
        .testTarget(name: "EndToEndTests", dependencies: [
            "AMQPClient", "RedisClient", "RedisPlugin", "PipelineKit", "TestSupport",
            .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio"), .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        .testTarget(
            name: "OutboundWorkerAppTests",
            dependencies: ["OutboundWorkerApp", "RedisPlugin", "IdempotencyPlugin", "WhatsAppPlugin", "RedisClient", "TestSupport", .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: strict
        ),
        .testTarget(name: "RabbitMQPluginTests", dependencies: ["RabbitMQPlugin", "EventsPlugin", "AMQPClient", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "SuppressPluginTests", dependencies: ["SuppressPlugin", "RedisPlugin", "ValidatePlugin", "WhatsAppPlugin", "WebhookPlugin", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "RedisPluginTests", dependencies: ["RedisPlugin", "RedisClient", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "WebhookPluginTests", dependencies: ["WebhookPlugin", "AccountLimitsPlugin", "IdempotencyPlugin", "RedisPlugin", "RedisClient", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "IdempotencyPluginTests", dependencies: ["IdempotencyPlugin", "RedisPlugin", "RedisClient", "TestSupport"], swiftSettings: strict),
    ]
)
