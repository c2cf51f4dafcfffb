// swift-tools-version: 6.1
import PackageDescription

let package = Package(
  name: "Capstan",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "capstan", targets: ["capstan"]),
    .library(name: "CapstanCore", targets: ["CapstanCore"]),
    .library(name: "CapstanReplay", targets: ["CapstanReplay"]),
  ],
  dependencies: [
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
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
    // I/O the drivers share: the append-only audit log file, running programs.
    .target(
      name: "CapstanRuntime",
      dependencies: ["CapstanCore"]
    ),
    // Live signal sources, one file per source behind `SignalReader`.
    .target(
      name: "CapstanSignals",
      dependencies: ["CapstanCore", "CapstanRuntime"]
    ),
    // What the controller acts through, one file per backend behind `ScalingBackend`.
    .target(
      name: "CapstanBackends",
      dependencies: [
        "CapstanCore",
        "CapstanRuntime",
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .executableTarget(
      name: "capstan",
      dependencies: [
        "CapstanCore",
        "CapstanReplay",
        "CapstanRuntime",
        "CapstanBackends",
        "CapstanSignals",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // Shared by the test targets: finding the built binary, scratch folders, polling.
    .target(
      name: "CapstanTestKit",
      dependencies: ["CapstanCore"]
    ),
    .testTarget(
      name: "CapstanCoreTests",
      dependencies: ["CapstanCore"],
      exclude: ["Fixtures"]
    ),
    .testTarget(
      name: "CapstanSignalsTests",
      dependencies: ["CapstanCore", "CapstanSignals", "CapstanRuntime", "CapstanTestKit"]
    ),
    .testTarget(
      name: "CapstanBackendsTests",
      dependencies: ["CapstanCore", "CapstanBackends", "CapstanTestKit", "capstan"]
    ),
    .testTarget(
      name: "CapstanReplayTests",
      dependencies: ["CapstanCore", "CapstanReplay", "CapstanRuntime", "CapstanTestKit", "capstan"],
      exclude: ["Fixtures"]
    ),
  ]
)
