import Foundation

/// Step 2: what the tracking target and the rules each ask for.
extension TargetContext {
  /// A target's proposals: its tracking, and its scale-up or scale-down rule. Plain fields and
  /// plain code rather than a Sequence, so no generic algorithm copies a proposal through value
  /// witnesses.
  struct Proposals {
    var tracking: Proposal?
    var rule: Proposal?
    /// The SLO sizing's, for a process scaled on its SLOs.
    var slo: Proposal?
    /// Whether a signal they read (the tracking metric, any condition of either rule) was missing,
    /// noted as they read it rather than looked up again.
    var readMissingSignal = false

    /// The highest; on a tie, the first (tracking before the rule).
    var highest: Proposal? { highest(below: nil) }

    /// The highest below `limit` (any with nil); on a tie, the first (tracking, the rule, the
    /// SLO sizing).
    func highest(below limit: Int?) -> Proposal? {
      func counts(_ proposal: Proposal?) -> Proposal? {
        guard let proposal, limit.map({ proposal.replicas < $0 }) ?? true else { return nil }
        return proposal
      }
      func higher(_ first: Proposal?, _ second: Proposal?) -> Proposal? {
        guard let first else { return second }
        guard let second, second.replicas > first.replicas else { return first }
        return second
      }
      return higher(higher(counts(tracking), counts(rule)), counts(slo))
    }

    /// Whether every proposal is below `count` (true with none).
    func all(below count: Int) -> Bool {
      (tracking.map { $0.replicas < count } ?? true) && (rule.map { $0.replicas < count } ?? true)
        && (slo.map { $0.replicas < count } ?? true)
    }

    /// The SLO sizing's proposal where one of its holds kept it above what its objectives ask
    /// for and no other proposal asks for as many: the hold binds. With the count the target
    /// would have wanted without it.
    func heldBySLO() -> (proposal: Proposal, wanted: Int)? {
      guard let slo, case .slo(let sizing) = slo.basis, let before = sizing.beforeHold, before < slo.replicas
      else { return nil }
      let others = max(tracking?.replicas ?? before, rule?.replicas ?? before)
      guard others < slo.replicas else { return nil }
      return (slo, max(before, others))
    }

    /// The first that holds because replicas are still starting, wanting another count.
    func holdingForStarting(_ current: Int) -> Proposal? {
      if let tracking, let ready = tracking.readyOnly, ready != current { return tracking }
      if let rule, let ready = rule.readyOnly, ready != current { return rule }
      return nil
    }
  }

  func propose(_ state: inout TargetState) -> Proposals {
    var proposals = Proposals()
    if let tracking = target.tracking {
      let proposal = trackingProposal(tracking)
      if case .trackingMissing = proposal.basis { proposals.readMissingSignal = true }
      proposals.tracking = proposal
    }

    if let slo = target.slo, let positions = prepared.sloPositions {
      proposals.slo = sloProposal(slo, at: positions, &state, missing: &proposals.readMissingSignal)
    }

    let up = target.up.rule.map {
      evaluate(
        $0, positions: prepared.upConditionPositions, since: &state.scaleUpHoldingSince,
        missing: &proposals.readMissingSignal)
    }
    let down = target.down.rule.map {
      evaluate(
        $0, positions: prepared.downConditionPositions, since: &state.scaleDownHoldingSince,
        missing: &proposals.readMissingSignal)
    }
    if up == .fires {
      let step = target.up.step ?? 1
      proposals.rule = Proposal(
        replicas: current.saturatingAdd(step), reason: .scaleUpRule,
        basis: .scaleUpRuleFires(step: step))
    } else if let down {
      let step = target.down.step ?? 1
      switch down {
      case .fires:
        proposals.rule = Proposal(
          replicas: max(0, current - step), reason: .scaleDownRule,
          basis: .scaleDownRuleFires(step: step))
      case .missing:
        proposals.rule = Proposal(
          replicas: current, reason: .signalMissing, basis: .scaleDownRuleMissing)
      case .pending, .notMet:
        proposals.rule = Proposal(replicas: current, reason: .scaleDownRule, basis: .scaleDownRuleNotMet)
      }
    }
    return proposals
  }

  func trackingProposal(_ tracking: TargetTracking) -> Proposal {
    guard let value = prepared.trackingPosition.flatMap({ signals[$0] }) else {
      return Proposal(
        replicas: current, reason: .signalMissing, basis: .trackingMissing)
    }
    // Activation comes before the tolerance band, as in KEDA, so that more load never means
    // fewer replicas: at or below the threshold no replica is needed, whatever runs now.
    if target.min == 0 && value <= tracking.activationThreshold {
      return Proposal(
        replicas: 0, reason: .targetTracking,
        basis: .belowActivation(value: value))
    }
    var proposal: Proposal
    switch tracking.kind {
    case .utilization: proposal = utilizationProposal(tracking, value: value)
    case .averageValue: proposal = averageValueProposal(tracking, value: value)
    }
    if target.min == 0 && proposal.replicas < 1 {
      proposal.replicas = 1
      proposal.raisedToOne = true
    }
    return proposal
  }

  func averageValueProposal(_ tracking: TargetTracking, value: Double) -> Proposal {
    if current > 0 {
      let ratio = value / (tracking.target * Double(current))
      if withinTolerance(ratio, tracking.tolerance) {
        return Proposal(
          replicas: current, reason: .targetTracking,
          basis: .averageWithin(value: value))
      }
    }
    let desired = ceilCount(value / tracking.target)
    return Proposal(
      replicas: desired, reason: .targetTracking,
      basis: .averageDesired(value: value, desired: desired))
  }

  /// The HPA's replica calculator: the value is the mean over ready replicas. Replicas still
  /// starting count as 0% on a scale-up, so they are not asked to carry load they cannot take
  /// yet, and at the target on a scale-down, so they are never the reason to remove any (the
  /// HPA ignores them there; Capstan treats them as it treats pods with no metrics). When that
  /// flips the direction, the count holds.
  func utilizationProposal(_ tracking: TargetTracking, value: Double) -> Proposal {
    let ready = status.readyWithinCurrent
    guard ready > 0 else {
      return Proposal(
        replicas: current, reason: .targetTracking,
        basis: .noReadyReplica(value: value))
    }
    let ratio = value / tracking.target
    let unready = current - ready
    guard unready > 0, !withinTolerance(ratio, tracking.tolerance) else {
      if withinTolerance(ratio, tracking.tolerance) {
        return Proposal(
          replicas: current, reason: .targetTracking, basis: .utilizationWithin(value: value))
      }
      let desired = ceilCount(Double(ready) * ratio)
      return Proposal(
        replicas: desired, reason: .targetTracking,
        basis: .utilizationDesired(value: value, desired: desired))
    }
    let assumed = ratio > 1 ? 0.0 : 1.0
    let adjusted = (ratio * Double(ready) + assumed * Double(unready)) / Double(current)
    if withinTolerance(adjusted, tracking.tolerance) || (ratio > 1) != (adjusted > 1) {
      return Proposal(
        replicas: current, reason: .targetTracking,
        basis: .utilizationStarting(value: value, adjusted: adjusted, desired: nil),
        readyOnly: ceilCount(Double(ready) * ratio))
    }
    let desired = ceilCount(adjusted * Double(current))
    return Proposal(
      replicas: desired, reason: .targetTracking,
      basis: .utilizationStarting(value: value, adjusted: adjusted, desired: desired))
  }

  enum RuleOutcome {
    case fires
    case pending
    case notMet
    case missing
  }

  /// - Parameter missing: set when a condition's signal has no value.
  func evaluate(
    _ rule: ScaleRule, positions: ConditionPositions, since: inout Date?, missing: inout Bool
  ) -> RuleOutcome {
    var anyHeld = false
    var failed = false
    var anyMissing = false
    for (index, condition) in rule.conditions.enumerated() {
      guard let value = signals[positions[index]] else {
        anyMissing = true
        continue
      }
      if condition.op.holds(value, condition.threshold.value) {
        anyHeld = true
      } else {
        failed = true
      }
    }
    if anyMissing { missing = true }
    let holds: Bool?
    switch rule.match {
    case .any: holds = anyHeld ? true : (anyMissing ? nil : false)
    case .all: holds = failed ? false : (anyMissing ? nil : true)
    }
    guard holds == true else {
      since = nil
      return holds == nil ? .missing : .notMet
    }
    let start = since ?? now
    since = start
    guard now.timeIntervalSince(start) >= rule.duration else { return .pending }
    return .fires
  }
}

/// The band is inclusive, as the HPA's is; the epsilon keeps 77/70 (1.1000000000000001) inside 10%.
func withinTolerance(_ ratio: Double, _ tolerance: Double) -> Bool {
  abs(ratio - 1) <= tolerance + 1e-9
}

/// ceil, forgiving the last bit of floating-point error (2.0000000001 replicas is 2).
func ceilCount(_ value: Double) -> Int {
  guard value > 0 else { return 0 }
  return Int(saturating: (value - 1e-9).rounded(.up))
}
