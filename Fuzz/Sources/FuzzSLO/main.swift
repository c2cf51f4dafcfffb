import CapstanCore
import Foundation
import FuzzSupport

/// Any bytes as a run of ticks for processes sized on their SLOs: each tick's signal values
/// (missing, zero, ordinary, up to 1e15), how far time moves, and which replicas become ready
/// come from the bytes. Through the latency models, the error budgets, the forecast and the
/// capacities variants learn, every tick must keep each count within its min and max, scale
/// nothing down while its process's load or running requests are missing, write records with
/// no number that is not one, and leave a state that saves, loads back the same, and passes the
/// range check a restart applies.
let policy = sloProcesses
let engine = ScalingEngine(policy: policy)
let signalNames = policy.signals.map(\.name).sorted()
let targets = policy.targets
let start = Date(timeIntervalSince1970: 1_700_000_000)

/// Reads the input a byte at a time; nil once it is spent, which ends the run.
struct Bytes {
  let base: UnsafePointer<UInt8>
  let count: Int
  var offset = 0

  mutating func next() -> UInt8? {
    guard offset < count else { return nil }
    defer { offset += 1 }
    return base[offset]
  }
}

/// A signal's value from two bytes: missing, zero, near the top of what a signal may be, or
/// an ordinary number at one of several scales (latencies in seconds to requests a second).
func value(_ kind: UInt8, _ fraction: UInt8) -> Double? {
  let share = Double(fraction) / 255
  switch kind {
  case 0..<16: return nil
  case 16..<32: return 0
  case 32..<40: return share * 1e15
  default:
    let scales = [0.05, 0.5, 2, 5, 20, 100, 1000]
    return share * scales[Int(kind) % scales.count]
  }
}

/// The reasons a count comes down to a limit whatever the signals say.
let ceilings: Set<ScaleReason> = [.maxInstances, .gpuPool, .costCeiling, .rateLimitCeiling, .budgetCap]

/// A number written out as `nan` or `inf`: a record a person cannot check.
func holdsNonNumber(_ line: String) -> Bool {
  line.split { !$0.isLetter }.contains { ["nan", "inf", "infinity"].contains($0.lowercased()) }
}

func fuzzSLO(_ input: UnsafePointer<UInt8>, _ count: Int) -> CInt {
  var bytes = Bytes(base: input, count: count)
  var state = EngineState()
  var now = start
  var replicas: [String: ReplicaStatus] = [:]
  for target in targets { replicas[target.name] = ReplicaStatus(target.min) }
  var ticks = 0
  // The input ends the run mid-tick; what the ticks before it left is checked then.
  defer { checkSaved(state, now: now) }
  while true {
    var signals: [String: Double] = [:]
    for name in signalNames {
      guard let kind = bytes.next(), let fraction = bytes.next() else { return 0 }
      if let value = value(kind, fraction) { signals[name] = value }
    }
    guard let step = bytes.next() else { return 0 }
    now.addTimeInterval(step < 240 ? 15 : step < 252 ? 3600 : 86_400)
    var read: [String: ReplicaStatus] = [:]
    for target in targets {
      guard let readiness = bytes.next() else { return 0 }
      guard var status = replicas[target.name] else { continue }
      // Replicas come up a few at a time; now and then a backend does not answer.
      status.ready = min(status.current, status.ready + Int(readiness % 4))
      replicas[target.name] = status
      if readiness < 250 { read[target.name] = status }
    }
    let (decision, next) = engine.decide(
      EngineInputs(signals: signals, replicas: read), state: state, now: now)
    state = next
    for action in decision.actions {
      guard let target = targets.first(where: { $0.name == action.process }) else {
        fatalError("an action for \(action.process), which the policy does not have")
      }
      guard action.to >= target.min, action.to <= target.max else {
        fatalError(
          "\(action.process) scaled \(action.from) -> \(action.to), outside \(target.min)...\(target.max)")
      }
      // Missing data never causes a scale-down (the load, the requests running); a ceiling,
      // such as a max the fleet stands above, still brings the count down to it.
      let slo = target.variant.map { policy.variantGroup(named: $0.group)?.process.slo } ?? target.slo
      if action.to < action.from, !ceilings.contains(action.reason), let slo,
        signals[slo.load] == nil || signals[slo.running] == nil
      {
        fatalError(
          "\(action.process) scaled down \(action.from) -> \(action.to) with its load or running missing (\(action.reason.rawValue)): \(decision.events.map(\.detail))"
        )
      }
      let ready = min(replicas[action.process]?.ready ?? 0, action.to)
      replicas[action.process] = ReplicaStatus(current: action.to, ready: ready)
    }
    for event in decision.events {
      let line = AuditRecord(event, mode: .simulate).jsonLine()
      guard !holdsNonNumber(line) else { fatalError("a record with a number that is not one: \(line)") }
    }
    ticks += 1
    // Saving is most of a tick's time; every sixteenth tick and the last are checked.
    if ticks % 16 == 0 { checkSaved(state, now: now) }
  }
}

/// The state saves, loads back equal, and passes the range check a restart applies.
func checkSaved(_ state: EngineState, now: Date) {
  let encoder = JSONEncoder()
  encoder.dateEncodingStrategy = .secondsSince1970
  let decoder = JSONDecoder()
  decoder.dateDecodingStrategy = .secondsSince1970
  let saved: Data
  do { saved = try encoder.encode(state) } catch { fatalError("the state does not save: \(error)") }
  guard let loaded = try? decoder.decode(EngineState.self, from: saved) else {
    fatalError("the saved state does not load: \(String(decoding: saved, as: UTF8.self))")
  }
  guard loaded == state else { fatalError("the state loads back otherwise than it was saved") }
  let problems = loaded.problems(now: now)
  guard problems.isEmpty else {
    fatalError(
      "a restart would refuse the saved state: \(problems)\n\(String(decoding: saved, as: UTF8.self))")
  }
}

fuzz { bytes, count in
  guard let bytes else { return 0 }
  return fuzzSLO(bytes, count)
}
