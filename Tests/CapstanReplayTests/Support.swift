import CapstanTestKit
import Foundation
import Testing

let goldenFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
  "Fixtures/golden")

func temporaryFile(_ name: String) -> URL {
  FileManager.default.temporaryDirectory.appendingPathComponent("capstan-tests-\(UUID().uuidString)-\(name)")
}
