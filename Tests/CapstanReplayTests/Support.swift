import Foundation
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let goldenFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
  "Fixtures/golden")

/// The `capstan` binary SwiftPM built beside this test bundle.
func capstanBinary() throws -> URL {
  let candidates = [
    Bundle.main.executableURL?.deletingLastPathComponent(),
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
    Bundle.main.bundleURL.deletingLastPathComponent(),
  ].compactMap { $0 }
  for folder in candidates {
    let binary = folder.appendingPathComponent("capstan")
    if FileManager.default.isExecutableFile(atPath: binary.path) { return binary }
  }
  throw CapstanNotBuilt(searched: candidates.map(\.path))
}

struct CapstanNotBuilt: Error, CustomStringConvertible {
  var searched: [String]
  var description: String {
    "no capstan binary beside the tests (looked in \(searched)); run swift build first"
  }
}

struct ProcessResult {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs the real `capstan` binary in the repository root, as a user would.
func runCapstan(_ arguments: [String]) throws -> ProcessResult {
  let process = Process()
  process.executableURL = try capstanBinary()
  process.arguments = arguments
  process.currentDirectoryURL = repositoryRoot
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  // Read before waiting: a full pipe would block the child.
  let stdout = out.fileHandleForReading.readDataToEndOfFile()
  let stderr = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return ProcessResult(
    status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
    stderr: String(decoding: stderr, as: UTF8.self))
}

func temporaryFile(_ name: String) -> URL {
  FileManager.default.temporaryDirectory.appendingPathComponent("capstan-tests-\(UUID().uuidString)-\(name)")
}
