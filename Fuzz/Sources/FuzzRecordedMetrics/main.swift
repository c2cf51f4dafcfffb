import CapstanCore
import CapstanReplay
import Foundation
import Logging

/// The harness's own policy, which loads or the harness is broken.
func fixedPolicy(yaml: String) -> Policy {
  do {
    return try PolicyLoader.load(yaml: yaml, file: "fuzz.yaml").policy
  } catch {
    fatalError("the fuzz harness's policy does not load: \(error)")
  }
}

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

/// libFuzzer's entry point, for a program that has its own main (as SwiftPM executables do).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzer(
  _ argc: UnsafeMutablePointer<Int32>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(
  runFuzzer(&argc, &argv) { bytes, count in
    guard let bytes else { return 0 }
    return fuzzRecordedMetrics(bytes, count)
  })
