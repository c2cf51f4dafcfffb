import CapstanTestKit
import Foundation
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let goldenFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
  "Fixtures/golden")

struct ProcessResult {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs the real `capstan` binary in the repository root, as a user would.
func runCapstan(_ arguments: [String]) throws -> ProcessResult {
  let process = Process()
  process.executableURL = try CapstanBinary.url()
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
