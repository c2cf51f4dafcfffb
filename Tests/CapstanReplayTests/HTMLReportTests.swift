import CapstanCore
import CapstanTestKit
import Foundation
import Testing

@testable import CapstanReplay

/// The reports the real binary writes, opened in a real headless chromium.
@Suite("HTML reports", .serialized)
struct HTMLReportTests {
  /// What the page's own script counted of the markers it drew, per process and kind.
  static func drawn(_ page: Chromium.Page) throws -> [String: [String: Int]] {
    let start = try #require(page.dom.range(of: #"<pre id="drawn" hidden="">"#))
    let end = try #require(page.dom[start.upperBound...].range(of: "</pre>"))
    let json = String(page.dom[start.upperBound..<end.lowerBound]).replacingOccurrences(
      of: "&quot;", with: "\"")
    return try JSONDecoder().decode([String: [String: Int]].self, from: Data(json.utf8))
  }

  /// The audit log's records per process and event.
  static func counts(_ audit: URL) throws -> [String: [String: Int]] {
    var counts: [String: [String: Int]] = [:]
    for line in try String(contentsOf: audit, encoding: .utf8).split(separator: "\n") {
      let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      let process = try #require(record["process"] as? String)
      let event = try #require(record["event"] as? String)
      counts[process, default: [:]][event, default: 0] += 1
    }
    return counts
  }

  @Test(
    "replay --report: opens with no console message, and draws a marker for every record of the audit log")
  func replayReport() throws {
    let report = temporaryFile("replay.html")
    let audit = temporaryFile("replay.jsonl")
    let result = try runCapstan(
      CommandLineTests.example + ["--report", report.path, "--audit-log", audit.path])
    #expect(result.status == 0, "\(result.stderr)")
    let page = try Chromium.load(report)
    #expect(page.console.isEmpty, "\(page.console)")
    #expect(!page.dom.contains("data-errors"))
    #expect(try Self.drawn(page) == Self.counts(audit))
    // The binding ceilings, the budgets and the summary are there.
    #expect(page.dom.contains("ceiling 7: max_cost_per_hour_usd 30 at 4.1 USD/h per replica allows 7"))
    #expect(page.dom.contains("daily budget $900"))
    #expect(page.dom.contains("<caption>Summary</caption>"))
    // What a marker says on hover is its record.
    #expect(page.dom.contains("blocked (budget_frozen): wanted 1"))
  }

  @Test(
    "simulate --compare --report: each run's replicas on one axis, the arrivals, each run's queue and SLO latency against its bound, and the scores of every run"
  )
  func simulateReport() throws {
    let report = temporaryFile("simulate.html")
    let audit = temporaryFile("simulate.jsonl")
    let result = try runCapstan([
      "simulate", "examples/simulate/jobs.yaml", "--trace", "examples/simulate/jobs-burst.csv", "--compare",
      "oracle,hpa", "--report", report.path, "--audit-log", audit.path,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let page = try Chromium.load(report)
    #expect(page.console.isEmpty, "\(page.console)")
    for run in ["policy", "oracle", "hpa"] {
      #expect(page.dom.contains("replicas: \(run)</span>"))
      // Each run's queue and SLO latency on the load charts.
      #expect(page.dom.contains("queue: \(run)</span>") && page.dom.contains("p95: \(run)</span>"))
    }
    #expect(page.dom.contains("arrivals</span>"))
    #expect(page.dom.contains("queue_wait p95 over the last minute (s)"))
    #expect(page.dom.contains("SLO bound 120s"))
    #expect(try Self.drawn(page) == Self.counts(audit))
    #expect(page.dom.contains("<th>x oracle</th>"))
  }

  @Test("a report path that cannot be written is an error before anything runs")
  func unwritableReport() throws {
    let audit = temporaryFile("none.jsonl")
    let result = try runCapstan(
      CommandLineTests.example + ["--report", "/nonexistent-folder/r.html", "--audit-log", audit.path])
    #expect(result.status == 1)
    #expect(
      result.stderr.contains(
        "/nonexistent-folder/r.html: error: cannot write here (No such file or directory)"))
    #expect(result.stdout.isEmpty)
    #expect((try? String(contentsOf: audit, encoding: .utf8))?.isEmpty ?? true, "no record: nothing ran")
    let folder = temporaryFile("folder")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let again = try runCapstan(CommandLineTests.example + ["--report", folder.path])
    #expect(again.status == 1 && again.stderr.contains("is a folder"))
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
  }

  @Test("a replay that fails on a bad row leaves no report and no temporary file beside it")
  func failedRunLeavesNoReport() throws {
    let folder = temporaryFile("failed-report")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let day = try String(contentsOfFile: "examples/llm-day.csv", encoding: .utf8)
    var lines = day.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    // Row 101 loses a number halfway through the day.
    lines[100] = lines[100].replacingOccurrences(of: ",", with: ",x", options: [], range: nil)
    let metrics = folder.appendingPathComponent("broken.csv")
    try lines.joined(separator: "\n").write(to: metrics, atomically: true, encoding: .utf8)
    let report = folder.appendingPathComponent("r.html")
    let result = try runCapstan([
      "replay", "policies/llm-serving.yaml", "--metrics", metrics.path, "--report", report.path,
    ])
    #expect(result.status == 1)
    #expect(result.stderr.contains("broken.csv:101:"), "\(result.stderr)")
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["broken.csv"])
  }

  @Test("a month of ticks draws from at most 1,500 buckets a series, and keeps each bucket's range")
  func monthDownsampled() throws {
    let policy = try PolicyLoader.load(
      yaml: "processes:\n  w:\n    scaling: {metric: q, target: 10, min: 1, max: 50}\n", file: "p.yaml"
    ).policy
    let recorder = ReportRecorder(policy: policy)
    let start = Date(timeIntervalSince1970: 1_700_000_000)
    for tick in 0..<(30 * 86_400 / 15) {
      let replicas = tick % 5_000 == 0 ? 50 : 3
      recorder.tick(
        run: "replay", time: start.addingTimeInterval(Double(tick) * 15), replicas: ["w": replicas],
        signals: ["q": Double(tick % 100)], state: nil)
    }
    let series = try #require(recorder.processes["w"]?.replicas["replay"])
    #expect(series.buckets.count <= 1_500 && series.buckets.count > 700)
    #expect(series.highest == 50 && series.buckets.contains { $0.low == 3 && $0.high == 50 })
    let html = HTMLReport.render(recorder, title: "month", subtitle: "", tables: [])
    #expect(html.utf8.count < 1_000_000)
  }
}
