import CapstanTestKit
import Foundation
import Testing

let goldenFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
  "Fixtures/golden")

func temporaryFile(_ name: String) -> URL {
  FileManager.default.temporaryDirectory.appendingPathComponent("capstan-tests-\(UUID().uuidString)-\(name)")
}

/// A policy file with this text in a fresh temporary path; the caller removes it.
func policyFile(_ name: String, _ yaml: String) throws -> URL {
  let file = temporaryFile(name)
  try yaml.write(to: file, atomically: true, encoding: .utf8)
  return file
}
