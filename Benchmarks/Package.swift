// swift-tools-version: 6.1
// Benchmarks live in their own package so that building and testing Capstan never builds the
// benchmark harness. Run: cd Benchmarks && swift package benchmark
import Foundation
import PackageDescription

// A path dependency is named after its folder, which differs between checkouts.
let capstan = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .lastPathComponent

let package = Package(
  name: "CapstanBenchmarks",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(path: ".."),
    .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
  ],
  targets: [
    .executableTarget(
      name: "CapstanBenchmarks",
      dependencies: [
        .product(name: "Benchmark", package: "benchmark"),
        .product(name: "CapstanCore", package: capstan),
        .product(name: "CapstanReplay", package: capstan),
      ],
      path: "Benchmarks/CapstanBenchmarks",
      plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
  ]
)
