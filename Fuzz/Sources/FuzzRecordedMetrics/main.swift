import CapstanCore
import CapstanReplay
import Foundation
import FuzzSupport
import Logging

/// Any bytes as a recording, CSV and JSON Lines: parsed or refused at a line, never a crash or
/// a hang; one that parses replays a fixed policy (short spans only, to keep runs fast).
let policy = fixedPolicy(
  yaml: """
    processes:
      model: {cost_per_hour_usd: 2, scaling: {metric: gpu, target: 60%, min: 1, max: 20}}
      jobs: {class: batch, scaling: {metric: q, target: 10, activation_threshold: 2, min: 0, max: 50}}
    autoscaling:
      model: {cost_circuit_breaker: {daily_budget_usd: 10}}
    """)

func fuzzRecordedMetrics(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
  for parse in [RecordedMetrics.parseCSV, RecordedMetrics.parseJSONLines] {
    guard let metrics = try? parse(text, "fuzz"), let first = metrics.samples.first?.time,
      let last = metrics.samples.last?.time, last.timeIntervalSince(first) < 6 * 3600
    else { continue }
    _ = try? Replay(policy: policy, logger: Logger(label: "fuzz")).run(metrics)
  }
  return 0
}

fuzz { bytes, count in
  guard let bytes else { return 0 }
  return fuzzRecordedMetrics(bytes, count)
}
