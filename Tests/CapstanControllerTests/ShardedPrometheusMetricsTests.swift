import CapstanController
import Foundation
import Metrics
import Testing

@Suite("Metrics spread over Prometheus registries")
struct ShardedPrometheusMetricsTests {
  @Test(
    "one exposition: each family's header once and its samples together, every series kept, promtool agrees")
  func mergedExposition() throws {
    let metrics = ShardedPrometheusMetrics(shards: 8)
    let processes = (0..<300).map { "worker-\($0)" }
    for process in processes {
      for state in ["desired", "current", "ready"] {
        Gauge(
          label: "capstan_replicas", dimensions: [("process", process), ("state", state)], factory: metrics
        )
        .record(3)
      }
      Counter(label: "capstan_backend_errors_total", dimensions: [("process", process)], factory: metrics)
        .increment(by: 0)
    }
    // The same series asked for again is the same series, in the same shard.
    for _ in 0..<2 {
      Counter(label: "capstan_backend_errors_total", dimensions: [("process", "worker-7")], factory: metrics)
        .increment()
    }
    Counter(label: "capstan_tick_overruns_total", dimensions: [], factory: metrics).increment(by: 0)
    Timer(label: "capstan_tick_duration_seconds", dimensions: [], factory: metrics).recordSeconds(0.2)

    let text = metrics.emit()
    let lines = text.split(separator: "\n")
    #expect(lines.filter { $0.hasPrefix("# TYPE capstan_replicas ") }.count == 1)
    #expect(lines.filter { $0.hasPrefix("capstan_replicas{") }.count == 900)
    #expect(lines.filter { $0.hasPrefix("capstan_backend_errors_total{") }.count == 300)
    #expect(lines.contains(#"capstan_backend_errors_total{process="worker-7"} 2"#))
    // Each family's lines stand together: every sample follows its own family's TYPE line, and
    // no family is declared twice.
    var declared: [Substring] = []
    for line in lines {
      if line.hasPrefix("# TYPE ") {
        declared.append(line.split(separator: " ")[2])
        continue
      }
      guard !line.hasPrefix("#"), let family = declared.last else { continue }
      let name = line.prefix { $0 != "{" && $0 != " " }
      #expect(
        name == family || ["_bucket", "_sum", "_count"].contains { name == family + $0 },
        "\(name) stands among \(family)'s lines")
    }
    #expect(Set(declared).count == declared.count, "a family is declared twice")
    // The Prometheus project's own checker reads it as valid exposition.
    let promtool = Process()
    promtool.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
    promtool.arguments = ["check", "metrics"]
    let input = Pipe()
    let output = Pipe()
    promtool.standardInput = input
    promtool.standardOutput = output
    promtool.standardError = output
    try promtool.run()
    input.fileHandleForWriting.write(Data(text.utf8))
    try input.fileHandleForWriting.close()
    let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    promtool.waitUntilExit()
    // promtool's lint asks for HELP text and base units; an error in the format fails it with
    // "error while linting" or a parse error, which is what this looks for.
    #expect(!said.contains("error while linting") && !said.contains("text format parsing error"), "\(said)")
  }

  @Test(
    "gauges: one series a label set, the latest value, label values escaped, NaN and Inf spelled as Prometheus does"
  )
  func gauges() throws {
    let metrics = ShardedPrometheusMetrics(shards: 4)
    func gauge(_ signal: String) -> Gauge {
      Gauge(label: "capstan_signal_value", dimensions: [("signal", signal)], factory: metrics)
    }
    gauge("queue").record(3)
    gauge("queue").record(7.5)
    gauge("odd \"name\"\\ with\nnewline").record(1)
    gauge("missing").record(Double.nan)
    gauge("unbounded").record(-Double.infinity)
    Gauge(label: "capstan_leader", dimensions: [], factory: metrics).record(1)
    let gone = gauge("gone")
    gone.record(2)
    gone.destroy()
    gone.record(4)

    let lines = metrics.emit().split(separator: "\n")
    #expect(lines.filter { $0 == "# TYPE capstan_signal_value gauge" }.count == 1)
    #expect(lines.filter { $0.hasPrefix("capstan_signal_value{") }.count == 4)
    #expect(lines.contains(#"capstan_signal_value{signal="queue"} 7.5"#))
    #expect(lines.contains(#"capstan_signal_value{signal="odd \"name\"\\ with\nnewline"} 1.0"#))
    #expect(lines.contains(#"capstan_signal_value{signal="missing"} NaN"#))
    #expect(lines.contains(#"capstan_signal_value{signal="unbounded"} -Inf"#))
    #expect(lines.contains("capstan_leader 1.0"))
    #expect(!lines.contains { $0.contains(#"signal="gone""#) })
  }
}
