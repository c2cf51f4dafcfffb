import CapstanTestKit
import Foundation
import Testing

/// `examples/slo/image-slo.yaml`, the real binary, on days written by
/// `examples/slo/make-image-days.py`: the example docs/slo.md measures over ten days, here over
/// two small ones.
@Suite("The SLO sizing's forecast, end to end")
struct SLOForecastCommandTests {
  static let available = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")

  @Test(
    "the image pool: the forecast is off on the first day, on from the second, and records say which load sized the pool",
    .enabled(if: available, "needs python3"))
  func imagePool() throws {
    let made = try runProgram(
      "/usr/bin/python3", ["examples/slo/make-image-days.py", "--days", "2", "--peak", "0.4", "--ramp", "2"])
    #expect(made.status == 0, "\(made.stderr)")
    let lines = made.stdout.split(separator: "\n")
    #expect(lines.first == "timestamp,work_seconds" && lines.count > 10_000)
    let trace = temporaryFile("image-days.csv")
    let log = temporaryFile("image-days.jsonl")
    defer {
      try? FileManager.default.removeItem(at: trace)
      try? FileManager.default.removeItem(at: log)
    }
    try made.stdout.write(to: trace, atomically: true, encoding: .utf8)
    // A cold start: a warm one would first search for the oracle's schedule over both days.
    let result = try runCapstan([
      "simulate", "examples/slo/image-slo.yaml", "--trace", trace.path, "--start", "min", "--audit-log",
      log.path, "--format", "json",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let records = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map {
      try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    let forecast = records.filter { $0["reason"] as? String == "predictive_floor" }
    #expect(
      (forecast.first?["detail"] as? String)?.hasPrefix(
        "seasonal forecast off, sizing on the load's trend alone: the history of job_rate covers") == true,
      "\(forecast.first ?? [:])")
    let on = try #require(forecast.first { $0["event"] as? String == "predictive_floor" })
    #expect(
      (on["detail"] as? String)?.hasPrefix(
        "seasonal forecast on: a daily profile of job_rate from 1 day of history (learned from what it sees), the 90th percentile of each 5m slot's mean"
      ) == true, "\(on)")
    // From the second day each sized record carries the profile beside the trend.
    let sized = records.compactMap { $0["slo"] as? [String: Any] }.filter { $0["mode"] as? String == "model" }
    let seasonal = sized.compactMap { $0["seasonal"] as? [String: Any] }
    #expect(!seasonal.isEmpty && seasonal.allSatisfy { $0["periods"] as? Int == 1 })
    // Before the step at 10:00 the profile asks for more than the trend: the count came from it.
    let ahead = records.filter {
      ($0["detail"] as? String)?.contains("a startup ahead (the profile's: the trend") == true
        && $0["event"] as? String == "scale_up"
    }
    #expect(!ahead.isEmpty)
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    let run = try #require((object?["processes"] as? [[String: Any]])?.first?["runs"] as? [[String: Any]])
    #expect(run.first?["run"] as? String == "policy")
    #expect((run.first?["slo_attainment"] as? Double ?? 0) >= 0.95, "\(run.first ?? [:])")
    // The promise is judged over a day: from the first hour, records say where its budget stands.
    let budgeted = sized.compactMap { ($0["objectives"] as? [[String: Any]])?.first }.filter {
      $0["budget_left"] != nil
    }
    #expect(!budgeted.isEmpty)
    #expect(budgeted.allSatisfy { ($0["aim"] as? Double ?? 0) >= 75 && ($0["aim"] as? Double ?? 100) < 100 })
    #expect(
      records.contains {
        ($0["detail"] as? String)?.contains("of the error budget left, so sized for p") == true
      })

    // With a history source, the note names the forecast for what it is.
    let policy = temporaryFile("image-history.yaml")
    defer { try? FileManager.default.removeItem(at: policy) }
    try String(contentsOfFile: "examples/slo/image-slo.yaml", encoding: .utf8).replacingOccurrences(
      of: "predictive: {seasonality: daily}", with: "predictive: {history: {file: recorded.csv}}"
    ).write(to: policy, atomically: true, encoding: .utf8)
    let noted = try runCapstan(["simulate", policy.path, "--trace", trace.path, "--start", "min"])
    #expect(noted.status == 0, "\(noted.stderr)")
    #expect(
      noted.stderr.contains(
        "note: the seasonal forecast of 'images' learns from the simulated run as it goes; its history (from recorded.csv and what it sees) is read by run and replay"
      ), "\(noted.stderr)")
  }
}
