import CapstanCore
import Foundation

/// The harness's own policy, which loads or the harness is broken.
func fixedPolicy(yaml: String) -> Policy {
  do {
    return try PolicyLoader.load(yaml: yaml, file: "fuzz.yaml").policy
  } catch {
    fatalError("the fuzz harness's policy does not load: \(error)")
  }
}

/// Any bytes as a saved state: decoded or refused; one that decodes and passes its range check
/// runs engine ticks without stopping the process.
let policy = fixedPolicy(
  yaml: """
    providers:
      llm: {tokens_per_minute: 100000}
    gpu_pools:
      h100: {gpus: 8}
    processes:
      w:
        cost_per_hour_usd: 4
        resources: {gpu: 1, gpu_pool: h100}
        rate_limit: {provider: llm, tokens_per_minute_per_replica: 5000}
        scaling: {metric: q, target: 10, min: 1, max: 8}
    autoscaling:
      w:
        scale_up: {action: {cooldown: 5m}}
        cost_circuit_breaker: {daily_budget_usd: 100, cost_rate_metric: spend}
    """)
let engine = ScalingEngine(policy: policy)

func fuzzState(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
  let decoder = JSONDecoder()
  decoder.dateDecodingStrategy = .secondsSince1970
  let now = Date(timeIntervalSince1970: 1_700_000_000)
  guard let state = try? decoder.decode(EngineState.self, from: Data(bytes: bytes, count: count)),
    state.problems(now: now).isEmpty
  else { return 0 }
  var current = state
  for tick in 0..<3 {
    let inputs = EngineInputs(
      signals: ["q": Double(tick) * 40, "spend": 3], replicas: ["w": ReplicaStatus(current: 2, ready: 1)])
    current = engine.decide(inputs, state: current, now: now.addingTimeInterval(Double(tick) * 15)).1
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
    return fuzzState(bytes, count)
  })
