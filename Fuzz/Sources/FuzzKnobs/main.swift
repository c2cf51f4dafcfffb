import CapstanCore
import CapstanSimulation
import Foundation
import FuzzSupport

/// Any bytes as a policy file for `tune --out`: where it loads, every knob found is rewritten
/// to each of its candidates, one at a time; the rewritten file must load, hold the new value,
/// and differ from the original in that value alone, and rewriting to the current value must
/// give the file back byte for byte.
func fuzzKnobs(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
  guard text.utf8.count < 1 << 16, let loaded = try? PolicyLoader.load(yaml: text, file: "fuzz.yaml") else {
    return 0
  }
  let policy = loaded.policy
  let knobs = Knob.find(in: text, policy: policy, processes: policy.targets.map(\.name))
  for knob in knobs {
    precondition(
      Knob.rewrite(text, [(knob, knob.current)]) == text || knob.text(knob.current) != knob.written,
      "rewriting \(knob.name) to its own value changed the file")
    for value in knob.candidates.prefix(3) {
      let rewritten = Knob.rewrite(text, [(knob, value)])
      precondition(rewritten != text || knob.text(value) == knob.written, "\(knob.name) was not rewritten")
      guard let again = try? PolicyLoader.load(yaml: rewritten, file: "fuzz.yaml").policy else {
        // A candidate may break a rule with another value (a min above max): refused, not lost.
        continue
      }
      guard let original = policy.target(named: knob.process), let read = again.target(named: knob.process)
      else { preconditionFailure("\(knob.process) is gone after rewriting \(knob.name)") }
      precondition(sameKnobs(read, knob.applied(to: original, value)), "\(knob.name) read back differently")
    }
  }
  return 0
}

/// The values tune changes, compared apart from where they are written (a longer value moves
/// the columns after it).
func sameKnobs(_ left: ScalingTarget, _ right: ScalingTarget) -> Bool {
  func rules(_ rules: DirectionRules) -> [Double?] {
    [rules.step.map(Double.init), rules.cooldown, rules.stabilization]
      + (rules.rule?.conditions.map { $0.threshold.value } ?? [])
  }
  return left.min == right.min && left.max == right.max && left.tracking?.target == right.tracking?.target
    && rules(left.up) == rules(right.up) && rules(left.down) == rules(right.down)
}

fuzz { bytes, count in
  guard let bytes else { return 0 }
  return fuzzKnobs(bytes, count)
}
