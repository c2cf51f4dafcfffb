import CapstanTestKit
import Foundation
import Testing

/// The committed example day must be what its script makes from the committed traces, so the
/// data the README replays is reproducible and its provenance honest.
@Suite("Example data")
struct ExampleDataTests {
  static let traces = repositoryRoot.appendingPathComponent("examples/traces")
  static let available = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")

  @Test(
    "examples/llm-day.csv is what examples/make-recorded-metrics.py makes",
    .enabled(if: available, "needs python3"))
  func reproducible() throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = [
      repositoryRoot.appendingPathComponent("examples/make-recorded-metrics.py").path, Self.traces.path,
    ]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let made = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    let committed = try Data(contentsOf: repositoryRoot.appendingPathComponent("examples/llm-day.csv"))
    #expect(made == committed)
  }
}
