import CapstanCore
import Foundation
import FuzzSupport

/// Any bytes as a policy file: the loader must answer with a policy or diagnostics, never stop
/// the process; a policy it accepts must run a few engine ticks, on values small and huge.
func fuzzPolicy(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
  let data = Data(bytes: bytes, count: count)
  guard let loaded = try? PolicyLoader.load(data: data, file: "fuzz.yaml") else { return 0 }
  let policy = loaded.policy
  let engine = ScalingEngine(policy: policy)
  var state = EngineState()
  let start = Date(timeIntervalSince1970: 1_700_000_000)
  var replicas: [String: ReplicaStatus] = [:]
  for target in policy.targets {
    replicas[target.name] = ReplicaStatus(current: target.min, ready: target.min)
  }
  for (tick, value) in [0.0, 1, 1e15, 7.5, 0].enumerated() {
    var signals: [String: Double] = [:]
    for signal in policy.signals where tick != 3 { signals[signal.name] = value }
    let (decision, next) = engine.decide(
      EngineInputs(signals: signals, replicas: replicas), state: state,
      now: start.addingTimeInterval(Double(tick) * 15))
    state = next
    for action in decision.actions {
      replicas[action.process] = ReplicaStatus(current: action.to, ready: action.to / 2, draining: tick % 2)
    }
    for event in decision.events { _ = AuditRecord(event, mode: .replay).jsonLine() }
  }
  for target in policy.targets { _ = StaticCeiling.binding(for: target, in: policy) }
  return 0
}

fuzz { bytes, count in
  guard let bytes else { return 0 }
  return fuzzPolicy(bytes, count)
}
