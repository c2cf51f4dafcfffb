// swift-tools-version: 6.1
// libFuzzer targets, in their own package so that building and testing Capstan never builds
// them. They are built with -sanitize=fuzzer,address over every module, so the coverage that
// guides the fuzzer reaches the policy loader and the engine; each main hands over to libFuzzer.
// Run: scripts/fuzz [SECONDS].
import Foundation
import PackageDescription

// A path dependency is named after its folder, which differs between checkouts.
let capstan = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .lastPathComponent

let core: Target.Dependency = .product(name: "CapstanCore", package: capstan)
let support: Target.Dependency = "FuzzSupport"

let package = Package(
  name: "CapstanFuzz",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(path: ".."),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
  ],
  targets: [
    // The libFuzzer driver and the harnesses' policy loading, shared by the six.
    .target(name: "FuzzSupport", dependencies: [core]),
    .executableTarget(name: "FuzzPolicy", dependencies: [core, support]),
    .executableTarget(
      name: "FuzzRecordedMetrics",
      dependencies: [
        core, support, .product(name: "CapstanReplay", package: capstan),
        .product(name: "Logging", package: "swift-log"),
      ]),
    .executableTarget(name: "FuzzState", dependencies: [core, support]),
    .executableTarget(name: "FuzzSLO", dependencies: [core, support]),
    .executableTarget(
      name: "FuzzTrace", dependencies: [core, support, .product(name: "CapstanSimulation", package: capstan)]),
    .executableTarget(
      name: "FuzzKnobs", dependencies: [core, support, .product(name: "CapstanSimulation", package: capstan)]),
  ]
)
