import CapstanController
import CapstanCore
import CapstanTestKit
import Foundation
import Testing

@Suite("Controller: predictive floor")
struct PredictiveControllerTests {
  static let yaml = """
    processes:
      worker:
        startup: 2m
        scaling: {metric: queue, target: 10, min: 1, max: 8}
        predictive: {history: {file: history.csv}}
    """

  /// Yesterday a minute at a time: 10 queued, and 100 from 22:15 to 23:00 (the harness starts
  /// at 22:13:20).
  static func writeHistory(in folder: URL) throws {
    let now = 1_700_000_000.0
    var text = "timestamp,queue\n"
    for minute in stride(from: now - 86_400, to: now, by: 60) {
      let secondsIntoDay = minute.truncatingRemainder(dividingBy: 86_400)
      let busy = secondsIntoDay >= 22 * 3600 + 15 * 60 && secondsIntoDay < 23 * 3600
      text += "\(Int(minute)),\(busy ? 100 : 10)\n"
    }
    try text.write(to: folder.appendingPathComponent("history.csv"), atomically: true, encoding: .utf8)
  }

  @Test(
    "history read from a file at start: the floor is on at the first tick and scales ahead of the busy slot")
  func historyFromFile() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(10))], yaml: Self.yaml)
    try Self.writeHistory(in: harness.folder)
    await harness.tick(0)
    #expect(await harness.backend.applied.map(\.to) == [8])
    let records = harness.records()
    #expect(records.map { $0["event"] as? String } == ["predictive_floor", "scale_up"])
    let up = try #require(records.last)
    #expect(up["reason"] as? String == "predictive_floor")
    let forecast = try #require(up["forecast"] as? [String: Any])
    #expect(forecast["forecast"] as? Double == 100 && forecast["replicas"] as? Int == 8)
    #expect(forecast["periods"] as? Int == 1)
    // The history is saved with the state, so a restart does not start from nothing.
    let saved = try #require(try harness.savedState())
    #expect(saved.engine.forecasts["worker"]?.history.periods.isEmpty == false)
  }

  @Test("a history file that is not there: logged, and the floor is off with a warning record")
  func missingHistoryFile() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(10))], yaml: Self.yaml)
    await harness.tick(0)
    #expect(await harness.backend.applied.isEmpty)
    let warning = try #require(harness.records().first)
    #expect(warning["event"] as? String == "warning" && warning["reason"] as? String == "predictive_floor")
    #expect((warning["detail"] as? String)?.contains("covers 0s of the day") == true)
  }
}
