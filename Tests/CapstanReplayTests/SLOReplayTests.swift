import CapstanTestKit
import Foundation
import Testing

/// The real binary: `validate` shows the objectives, `replay` of a recording with the SLO's
/// columns learns its models as it goes.
@Suite("capstan replay: scaling on the SLO", .serialized)
struct SLOReplayTests {
  /// A pool held at 2 replicas while its load ramps from 2 to 40 requests a second over an
  /// hour, and on for ten minutes more: each request stays 5 s, a replica's ITL is
  /// 20 ms + 1 ms a request it runs, its TTFT 300 ms + 10 ms a request; 99.8% of its gaps between
  /// tokens are within 50 ms, the ITL objective judged over a day.
  static func folder() throws -> URL {
    let folder = temporaryFile("slo")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try """
    controller: {interval: 15s}
    processes:
      model:
        startup: 2m
        scaling:
          min: 2
          max: 2
          slo:
            - {latency: ttft, percentile: 99, bound: 2s, measured: ttft_p99}
            - {latency: itl, percentile: 99, bound: 50ms, measured: itl_p99, within: itl_within, period: 24h}
          load: rate
          running: running
          waiting: waiting
    """.write(to: folder.appendingPathComponent("policy.yaml"), atomically: true, encoding: .utf8)
    var recording = "timestamp,rate,running,waiting,ttft_p99,itl_p99,itl_within\n"
    for tick in 0..<280 {
      let rate = 2 + 38 * Double(tick) / 239
      let perReplica = rate * 5 / 2
      recording +=
        "\(1_700_000_000 + tick * 15),\(rate),\(rate * 5),0,\(0.3 + 0.01 * perReplica),\(0.02 + 0.001 * perReplica),0.998\n"
    }
    try recording.write(to: folder.appendingPathComponent("ramp.csv"), atomically: true, encoding: .utf8)
    return folder
  }

  @Test("validate shows the objectives and the signals that carry the load")
  func validateShowsTheObjectives() throws {
    let folder = try Self.folder()
    let result = try runCapstan(["validate", folder.appendingPathComponent("policy.yaml").path])
    #expect(result.status == 0)
    #expect(
      result.stdout.contains(
        "sized on its SLOs: ttft p99 within 2s (measured by ttft_p99), itl p99 within 50ms (measured by itl_p99) over a rolling 24h, its error budget counted from itl_within; load rate, running running, waiting waiting"
      ), "\(result.stdout)")
  }

  @Test("validate names what each variant learns its capacity from, and the variant that sets the unit")
  func validateShowsLearning() throws {
    let result = try runCapstan([
      "validate", repositoryRoot.appendingPathComponent("examples/variants/slo-learned.yaml").path,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n")
    let l4 = try #require(lines.first { $0.hasPrefix("  inference.l4 ") }, "\(result.stdout)")
    #expect(
      l4.contains(
        "carries 1 of its capacity to start, learned from l4_request_rate, l4_requests_running, l4_ttft_p99"),
      "\(l4)")
    let h100 = try #require(lines.first { $0.hasPrefix("  inference.h100 ") }, "\(result.stdout)")
    #expect(h100.contains("the unit the others learn theirs in, measured by h100_request_rate"), "\(h100)")
    let process = try #require(lines.first { $0.hasPrefix("  inference  capacity") }, "\(result.stdout)")
    #expect(
      process.contains("; l4 learns capacity from its own signals, against h100 (capacity 1 sets the unit)"),
      "\(process)")
  }

  @Test("validate shows an SLO on a process with variants on the process, per unit of capacity")
  func validateShowsVariantSLO() throws {
    let result = try runCapstan([
      "validate", repositoryRoot.appendingPathComponent("examples/variants/slo.yaml").path,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n")
    let process = try #require(
      lines.first { $0.hasPrefix("  inference  capacity 1..16") }, "\(result.stdout)")
    #expect(
      process.contains(
        "sized on its SLOs per unit of capacity: ttft p99 within 2s (measured by ttft_p99); load request_rate"
      ),
      "\(process)")
    #expect(process.contains("; fills l4 ($2.40 an hour a unit"), "\(process)")
    // The variants are scaled by the process's sizing, not each on an SLO of its own.
    #expect(
      lines.filter { $0.hasPrefix("  inference.") }.allSatisfy { !$0.contains("sized on its SLOs") },
      "\(result.stdout)")

    // With a forecast of the daily shape, the process's line says it feeds the sizing.
    let forecast = temporaryFile("variant-slo-forecast.yaml")
    defer { try? FileManager.default.removeItem(at: forecast) }
    let text = try String(
      contentsOf: repositoryRoot.appendingPathComponent("examples/variants/slo.yaml"), encoding: .utf8)
    try text.replacingOccurrences(of: "    startup: 2m\n", with: "    startup: 2m\n    predictive: {}\n")
      .write(to: forecast, atomically: true, encoding: .utf8)
    let withForecast = try runCapstan(["validate", forecast.path])
    #expect(withForecast.status == 0, "\(withForecast.stderr)")
    #expect(
      withForecast.stdout.contains(
        "; forecast of request_rate as the SLO sizing's load ahead: daily profile of each 5m slot's mean"),
      "\(withForecast.stdout)")
  }

  @Test("replay learns the models from the recording and sizes from them once they are ready")
  func replayLearns() throws {
    let folder = try Self.folder()
    let audit = folder.appendingPathComponent("audit.jsonl")
    let result = try runCapstan([
      "replay", folder.appendingPathComponent("policy.yaml").path, "--metrics",
      folder.appendingPathComponent("ramp.csv").path, "--audit-log", audit.path,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let records = try String(contentsOf: audit, encoding: .utf8).split(separator: "\n").compactMap {
      try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    // Held at max 2 as the load grows: blocked records, each with the sizing.
    let sized = records.compactMap { $0["slo"] as? [String: Any] }
    #expect(!sized.isEmpty, "\(records)")
    let modelled = try #require(sized.last { $0["mode"] as? String == "model" }, "\(sized)")
    let objectives = try #require(modelled["objectives"] as? [[String: Any]])
    let itl = try #require(objectives.first { $0["latency"] as? String == "itl" })
    let beta = try #require(itl["beta"] as? Double)
    #expect(abs(beta / 0.001 - 1) < 0.05, "\(itl)")
    #expect((itl["samples"] as? Int ?? 0) >= 20)
    // An hour counted, 0.2% of gaps missed: a day's 1% almost unspent, so sized for p95.
    #expect(abs((itl["period_share"] as? Double ?? 0) - 0.998) < 1e-6, "\(itl)")
    #expect((itl["budget_left"] as? Double ?? 0) > 0.9 && itl["aim"] as? Double == 95, "\(itl)")
    #expect(objectives.first { $0["latency"] as? String == "ttft" }?["budget_left"] == nil)
    // Its ITL is above 50 ms, with the budget almost whole: spent, not corrected.
    #expect(
      (itl["measured_s"] as? Double ?? 0) > 0.05 && modelled["spending"] as? Bool == true, "\(modelled)")
    let spent = try #require(records.last { ($0["slo"] as? [String: Any])?["mode"] as? String == "model" })
    #expect(
      (spent["detail"] as? String)?.contains(
        "a measured latency is above its bound, but its error budget has 50% or more left, so none more for it"
      ) == true,
      "\(spent)")
    #expect((modelled["replicas"] as? Int ?? 0) > 2)
    let blocked = try #require(records.last { $0["event"] as? String == "blocked" })
    #expect(blocked["reason"] as? String == "max_instances")
    #expect((blocked["detail"] as? String)?.contains("itl = ") == true, "\(blocked)")
  }

  @Test("replay at a longer interval than the policy's ticks at its own: the ramp's trend still looks ahead")
  func replayInterval() throws {
    let folder = try Self.folder()
    let audit = folder.appendingPathComponent("audit-minute.jsonl")
    let result = try runCapstan([
      "replay", folder.appendingPathComponent("policy.yaml").path, "--metrics",
      folder.appendingPathComponent("ramp.csv").path, "--interval", "1m", "--audit-log", audit.path,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let sized = try String(contentsOf: audit, encoding: .utf8).split(separator: "\n").compactMap {
      (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["slo"] as? [String: Any]
    }
    // A minute between ticks is one tick at `--interval 1m`, not a gap of four 15 s ticks
    // after which the trend would start again, flat, at every tick.
    let last = try #require(sized.last, "\(sized)")
    let load = try #require(last["load"] as? Double)
    #expect((last["trend"] as? Double ?? 0) > load, "\(last)")
  }
}
