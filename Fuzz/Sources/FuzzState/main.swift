import CapstanCore
import Foundation
import FuzzSupport

/// Any bytes as a saved state: decoded or refused; one that decodes and passes its range check
/// runs engine ticks without stopping the process, for a target-tracking process and for
/// SLO-sized ones.
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
        startup: 2m
        predictive: {resolution: 1h, max_added: 4}
    autoscaling:
      w:
        scale_up: {action: {cooldown: 5m}}
        cost_circuit_breaker: {daily_budget_usd: 100, cost_rate_metric: spend}
    """)
let engine = ScalingEngine(policy: policy)
/// The same state ticked by SLO-sized processes: a saved model, trend, error budget or learned
/// capacity that passes the range check must not stop the process either.
let sloEngine = ScalingEngine(policy: sloProcesses)

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
  current = state
  for (tick, load) in [2.0, 40, 0.5].enumerated() {
    var signals: [String: Double] = [:]
    for signal in sloProcesses.signals { signals[signal.name] = load }
    var replicas: [String: ReplicaStatus] = [:]
    for target in sloProcesses.targets {
      replicas[target.name] = ReplicaStatus(current: 2, ready: 2 - tick % 2)
    }
    current =
      sloEngine.decide(
        EngineInputs(signals: signals, replicas: replicas), state: current,
        now: now.addingTimeInterval(Double(tick) * 15)
      ).1
  }
  return 0
}

fuzz { bytes, count in
  guard let bytes else { return 0 }
  return fuzzState(bytes, count)
}
