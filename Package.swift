// swift-tools-version: 6.1
import PackageDescription

let package = Package(
  name: "Capstan",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "capstan", targets: ["capstan"]),
    .library(name: "CapstanCore", targets: ["CapstanCore"]),
    .library(name: "CapstanReplay", targets: ["CapstanReplay"]),
    .library(name: "CapstanSimulation", targets: ["CapstanSimulation"]),
  ],
  dependencies: [
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
  ],
  targets: [
    // The pure core: policy model and validation, the decision engine, the
    // budget ledger and audit records. No I/O, no clock: time is an argument.
    .target(
      name: "CapstanCore",
      dependencies: [.product(name: "Yams", package: "Yams")]
    ),
    // The replay driver: recorded metrics in, the engine on a virtual clock.
    .target(
      name: "CapstanReplay",
      dependencies: [
        "CapstanCore",
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // Closed-loop simulation: request traces, simulated fleets, the same engine.
    .target(
      name: "CapstanSimulation",
      dependencies: ["CapstanCore", "CapstanReplay", .product(name: "Yams", package: "Yams")]
    ),
    // I/O the drivers share: the append-only audit log file, running programs.
    .target(
      name: "CapstanRuntime",
      dependencies: ["CapstanCore"]
    ),
    // libcurl, as a thin system-library target.
    .systemLibrary(
      name: "CCurl",
      pkgConfig: "libcurl",
      providers: [.apt(["libcurl4-openssl-dev"])]
    ),
    // hiredis, as a thin system-library target.
    // No pkgConfig: hiredis.pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses with a warning,
    // and the header is on the default include path.
    .systemLibrary(
      name: "CHiredis",
      providers: [.apt(["libhiredis-dev"])]
    ),
    // HTTP GET over libcurl, for http_json now and the Prometheus and Kubernetes APIs later.
    .target(
      name: "CapstanHTTP",
      dependencies: ["CCurl"]
    ),
    // The Kubernetes API over libcurl: connection (kubeconfig, in-cluster), REST calls with token
    // rotation and Retry-After, the /scale subresource, Events, and leader election on a Lease.
    .target(
      name: "CapstanKubernetes",
      dependencies: [
        "CapstanCore", "CapstanHTTP", .product(name: "Yams", package: "Yams"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Metrics", package: "swift-metrics"),
      ]
    ),
    // Live signal sources, one file per source behind `SignalReader`.
    .target(
      name: "CapstanSignals",
      dependencies: ["CapstanCore", "CapstanRuntime", "CapstanHTTP", "CHiredis"]
    ),
    // What the controller acts through, one file per backend behind `ScalingBackend`.
    .target(
      name: "CapstanBackends",
      dependencies: [
        "CapstanCore",
        "CapstanRuntime",
        "CapstanKubernetes",
        "CapstanHTTP",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Metrics", package: "swift-metrics"),
      ]
    ),
    // The live loop: signals in, the engine, actions out through a backend; state, audit,
    // metrics, reload and graceful shutdown.
    .target(
      name: "CapstanController",
      dependencies: [
        "CapstanCore",
        "CapstanReplay",
        "CapstanRuntime",
        "CapstanSignals",
        "CapstanBackends",
        "CapstanKubernetes",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ]
    ),
    // KEDA's external scaler over gRPC: KEDA asks, Capstan answers with its decisions. The
    // message and service code in Generated/ is made from proto/externalscaler.proto.
    .target(
      name: "CapstanKEDA",
      dependencies: [
        "CapstanCore",
        "CapstanBackends",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ]
    ),
    .executableTarget(
      name: "capstan",
      dependencies: [
        "CapstanCore",
        "CapstanReplay",
        "CapstanSimulation",
        "CapstanRuntime",
        "CapstanBackends",
        "CapstanSignals",
        "CapstanController",
        "CapstanKubernetes",
        "CapstanHTTP",
        "CapstanKEDA",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // Shared by the test targets: the built binary, scratch folders, polling, fakes, the test
    // servers and a controller harness.
    .target(
      name: "CapstanTestKit",
      dependencies: [
        "CapstanCore", "CapstanSignals", "CapstanBackends", "CapstanHTTP", "CapstanController",
        "CapstanRuntime",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "MetricsTestKit", package: "swift-metrics"),
      ]
    ),
    .testTarget(
      name: "CapstanCoreTests",
      dependencies: ["CapstanCore", .product(name: "PropertyBased", package: "swift-property-based")],
      exclude: ["Fixtures"]
    ),
    .testTarget(
      name: "CapstanSignalsTests",
      dependencies: ["CapstanCore", "CapstanSignals", "CapstanRuntime", "CapstanTestKit"],
      exclude: ["Fixtures"]
    ),
    .testTarget(
      name: "CapstanBackendsTests",
      dependencies: ["CapstanCore", "CapstanBackends", "CapstanRuntime", "CapstanTestKit", "capstan"]
    ),
    .testTarget(
      name: "CapstanControllerTests",
      dependencies: [
        "CapstanCore", "CapstanController", "CapstanRuntime", "CapstanTestKit",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "MetricsTestKit", package: "swift-metrics"),
      ]
    ),
    .testTarget(
      name: "CapstanKubernetesTests",
      dependencies: [
        "CapstanCore", "CapstanKubernetes", "CapstanBackends", "CapstanController", "CapstanRuntime",
        "CapstanTestKit", "CapstanHTTP", "capstan",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "MetricsTestKit", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "Yams", package: "Yams"),
      ]
    ),
    .testTarget(
      name: "CapstanSimulationTests",
      dependencies: ["CapstanCore", "CapstanSimulation", "CapstanTestKit", "capstan"]
    ),
    .testTarget(
      name: "CapstanRunTests",
      dependencies: ["CapstanTestKit", "capstan"]
    ),
    .testTarget(
      name: "CapstanReplayTests",
      dependencies: ["CapstanCore", "CapstanReplay", "CapstanRuntime", "CapstanTestKit", "capstan"],
      exclude: ["Fixtures"]
    ),
  ]
)
