import Benchmark
import CapstanCore
import CapstanReplay
import Foundation
import Logging

/// The example policy and day from the repository root.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

func examplePolicy() -> Policy {
  let text = try! String(
    contentsOf: root.appendingPathComponent("policies/llm-serving.yaml"), encoding: .utf8)
  return try! PolicyLoader.load(yaml: text, file: "llm-serving.yaml").policy
}

/// The example day tiled 30 times, each copy shifted a day later: a month of one-minute rows.
func monthOfMetricsCSV() -> String {
  let day = try! String(contentsOf: root.appendingPathComponent("examples/llm-day.csv"), encoding: .utf8)
  var lines = day.split(separator: "\n")
  let header = lines.removeFirst()
  var out = String(header) + "\n"
  for copy in 0..<30 {
    for line in lines {
      let comma = line.firstIndex(of: ",")!
      let time = RFC3339Parser.parse(String(line[..<comma]))!.addingTimeInterval(Double(copy) * 86_400)
      out += "\(Int(time.timeIntervalSince1970))" + line[comma...] + "\n"
    }
  }
  return out
}

enum RFC3339Parser {
  static func parse(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    return formatter.date(from: text)
  }
}

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(metrics: [
    .wallClock, .throughput, .mallocCountTotal, .peakMemoryResident,
  ])

  // One engine decision for two targets, their signals varying so every path is taken.
  Benchmark("engine decide (2 targets)", configuration: .init(scalingFactor: .kilo)) { benchmark in
    let engine = ScalingEngine(policy: examplePolicy())
    var state = EngineState()
    var replicas = ["inference": 4, "agent-worker": 2]
    let start = Date(timeIntervalSince1970: 1_700_092_800)
    benchmark.startMeasurement()
    for tick in benchmark.scaledIterations {
      let phase = Double(tick % 240)
      let signals: [String: Double] = [
        "gpu_utilization": 20 + phase / 3, "request_queue_depth": phase, "p95_latency": 10,
        "queue_depth": phase * 5, "oldest_message_age": phase, "llm_cost_usd_per_hour": 40,
      ]
      let inputs = EngineInputs(signals: signals, replicas: replicas.mapValues { ReplicaStatus($0) })
      let (decision, next) = engine.decide(
        inputs, state: state, now: start.addingTimeInterval(Double(tick) * 15))
      state = next
      for action in decision.actions { replicas[action.process] = action.to }
      blackHole(decision)
    }
  }

  let month = monthOfMetricsCSV()
  let samples = month.utf8.reduce(0) { $0 + ($1 == 10 ? 1 : 0) } - 1

  Benchmark("parse a month of metrics (43,200 rows)", configuration: .init(maxIterations: 10)) { benchmark in
    for _ in benchmark.scaledIterations {
      blackHole(try! RecordedMetrics.parseCSV(month, file: "month.csv"))
    }
  }

  let metrics = try! RecordedMetrics.parseCSV(month, file: "month.csv")
  Benchmark("replay a month of metrics at 15s ticks", configuration: .init(maxIterations: 10)) { benchmark in
    let replay = Replay(policy: examplePolicy(), logger: Logger(label: "bench"))
    for _ in benchmark.scaledIterations {
      blackHole(try! replay.run(metrics))
    }
  }
  precondition(samples == 43_200)
}
