import Foundation

/// One replica count some part of the policy asks for, and why.
struct Proposal {
  var replicas: Int
  var reason: ScaleReason
  var detail: String
  /// A hold because replicas are still starting: what counting only the ready ones would give.
  var readyOnly: Int?
}

/// One clamp that lowered (or raised) the count on the way from wanted to decided.
struct Clamp {
  var reason: ScaleReason
  var before: Int
  var after: Int
  var detail: String
}

/// One target's decision at one tick: proposals, then stabilization, then the clamps in order
/// (min/max, step size, cooldown, cost ceiling, rate-limit ceiling, GPU pool, budget freeze).
struct TargetContext {
  let target: ScalingTarget
  let status: ReplicaStatus
  let signals: [String: Double]
  let now: Date
  let ledger: BudgetLedger?
  let others: SharedUsage
  var provider: ProviderLimits? = nil
  var pool: GPUPool? = nil

  init(
    target: ScalingTarget, status: ReplicaStatus, signals: [String: Double], now: Date, ledger: BudgetLedger?,
    others: SharedUsage, provider: ProviderLimits? = nil, pool: GPUPool? = nil
  ) {
    self.target = target
    self.status = status
    self.signals = signals
    self.now = now
    self.ledger = ledger
    self.others = others
    self.provider = provider
    self.pool = pool
  }

  var current: Int { status.current }

  func decide(_ state: inout TargetState) -> (action: ScaleAction?, events: [AuditEvent]) {
    var events: [AuditEvent] = []
    if let expected = state.lastReplicas, expected != current {
      events.append(
        AuditEvent(
          time: now, process: target.name, kind: .externalChange, from: expected, to: current,
          reason: .externalChange,
          detail:
            "replicas are \(current), not the \(expected) Capstan last saw or set: someone else changed them; deciding from \(current)",
          signals: signalValues(target, signals), budget: nil,
          costPerHourUSD: target.costPerHourUSD.map { $0 * Double(current) }))
    }
    let proposals = self.proposals(&state)
    // Every signal a proposal reads; any of them missing vetoes a scale-down (rule 4), whichever
    // proposal it feeds and whatever a rule's `match:` says.
    let missing = target.proposalSignalNames.filter { signals[$0] == nil }

    // Scale up to the highest proposal; scale down only when every proposal agrees.
    var wanted = current
    var driver: Proposal?
    var vetoedByMissingData: Proposal?
    if let top = proposals.max(by: { $0.replicas < $1.replicas }) {
      let down = proposals.filter { $0.replicas < current }.max { $0.replicas < $1.replicas }
      if top.replicas > current || (proposals.allSatisfy({ $0.replicas < current }) && missing.isEmpty) {
        wanted = top.replicas
        driver = proposals.first { $0.replicas == top.replicas }
      } else if let down, !missing.isEmpty {
        vetoedByMissingData = down
      }
    }

    // [min, max] bound what is stored as a recommendation, so a window never holds a count
    // outside them, and bind again last, over stabilization, steps, cooldowns and ceilings.
    var clamps: [Clamp] = []
    let bounded = bound(wanted)
    if bounded != wanted {
      let reason: ScaleReason = bounded < wanted ? .maxInstances : .minInstances
      if bounded < wanted && wanted > current || bounded > wanted && wanted < current || driver == nil {
        clamps.append(Clamp(reason: reason, before: wanted, after: bounded, detail: boundDetail(reason)))
      }
    }

    var next = stabilize(bounded, &state)
    if next != bounded {
      let window = target.rules(bounded > next ? .up : .down).stabilization
      clamps.append(
        Clamp(
          reason: .stabilization, before: bounded, after: next,
          detail:
            "the \(bounded > next ? "scale-up" : "scale-down") stabilization window of \(format(window))s still holds a recommendation of \(next)"
        ))
    }
    next = applyLimits(to: next, state: state, clamps: &clamps)
    var boundClamp: Clamp?
    if bound(next) != next {
      let reason: ScaleReason = bound(next) > next ? .minInstances : .maxInstances
      boundClamp = Clamp(reason: reason, before: next, after: bound(next), detail: boundDetail(reason))
      next = bound(next)
    }
    if let restore = state.restoreTo.map(bound), next < restore {
      boundClamp = Clamp(
        reason: .restore, before: next, after: restore,
        detail:
          "restoring the \(restore) replicas Capstan ran before it restarted (its local replicas stop with it)"
      )
      next = restore
    }
    // Replicas still draining hold their place: growth stops at max less them, whatever the floor.
    let room = target.max - status.draining
    if status.draining > 0, next > current, next > room {
      let held = Swift.max(current, room)
      let detail =
        "\(target.maxSource.rawValue) \(target.max) counts the \(status.draining) replicas still draining"
      if boundClamp != nil {
        boundClamp?.after = held
        boundClamp?.detail += "; held at \(held) because \(detail)"
      } else {
        clamps.append(Clamp(reason: .maxInstances, before: next, after: held, detail: detail))
      }
      next = held
    }
    if let restore = state.restoreTo, current >= Swift.min(restore, target.max) { state.restoreTo = nil }

    // Events: the change (if any), then what held it back (if anything).
    var action: ScaleAction?
    state.lastReplicas = next
    if next != current {
      let reason = boundClamp?.reason ?? moveReason(next: next, wanted: wanted, driver: driver)
      var detail: String
      if let boundClamp {
        // The bound moved the count itself: say so first, then what the policy wanted.
        detail = boundClamp.detail
        if let driver { detail += "; wanted \(wanted) (\(driver.detail))" }
        if let held = clamps.last(where: { $0.before != $0.after }) { detail += "; \(held.detail)" }
      } else {
        detail = driver.map(\.detail) ?? clamps.first.map(\.detail) ?? ""
        if next != wanted, let last = clamps.last { detail += "; held at \(next) because \(last.detail)" }
      }
      action = ScaleAction(
        process: target.name, from: current, to: next, reason: reason, drainTimeout: target.drainTimeout,
        detail: detail)
      events.append(
        event(next > current ? .scaleUp : .scaleDown, to: next, reason: reason, detail: detail, after: next))
      if next > current { state.lastScaleUp = now } else { state.lastScaleDown = now }
    }

    var blocked: (reason: ScaleReason, wanted: Int, detail: String)?
    if let binding = clamps.last(where: { $0.before != $0.after && $0.reason != .minInstances }),
      binding.before != current, binding.before != next
    {
      let prefix = driver.map { "wanted \(binding.before) (\($0.detail))" } ?? "wanted \(binding.before)"
      blocked = (binding.reason, binding.before, "\(prefix); \(binding.detail)")
    } else if let vetoed = vetoedByMissingData, next == current {
      blocked = (
        .signalMissing, vetoed.replicas,
        "wanted \(vetoed.replicas) (\(vetoed.detail)) but \(missing.joined(separator: ", ")) has no value: missing data never scales down"
      )
    }
    if blocked == nil, next == current, driver == nil,
      let starting = proposals.first(where: { $0.readyOnly.map { $0 != current } ?? false }),
      let readyOnly = starting.readyOnly
    {
      blocked = (
        .replicasNotReady, readyOnly,
        "wanted \(readyOnly) on ready replicas alone; \(starting.detail)"
      )
    }
    if let blocked {
      let mark = TargetState.BlockedMark(reason: blocked.reason, wanted: blocked.wanted)
      if state.lastBlocked != mark {
        events.append(
          event(.blocked, to: blocked.wanted, reason: blocked.reason, detail: blocked.detail, after: next))
      }
      state.lastBlocked = mark
    }
    // A block is reported again only after the count has moved; while it stays put, flapping
    // between the same wanted counts would otherwise repeat the same record every few ticks.
    if action != nil && blocked == nil { state.lastBlocked = nil }
    return (action, events)
  }

  // MARK: Proposals

  private func proposals(_ state: inout TargetState) -> [Proposal] {
    var proposals: [Proposal] = []
    if let tracking = target.tracking { proposals.append(trackingProposal(tracking)) }

    let up = target.up.rule.map { evaluate($0, since: &state.scaleUpHoldingSince) }
    let down = target.down.rule.map { evaluate($0, since: &state.scaleDownHoldingSince) }
    if case .fires(let detail)? = up {
      let step = target.up.step ?? 1
      proposals.append(
        Proposal(
          replicas: current.saturatingAdd(step), reason: .scaleUpRule,
          detail: "scale_up rule: \(detail), add \(step)"))
    } else if let down {
      let step = target.down.step ?? 1
      switch down {
      case .fires(let detail):
        proposals.append(
          Proposal(
            replicas: max(0, current - step), reason: .scaleDownRule,
            detail: "scale_down rule: \(detail), remove \(step)"))
      case .missing(let names):
        proposals.append(
          Proposal(
            replicas: current, reason: .signalMissing,
            detail: "scale_down rule cannot be judged: \(names) missing"))
      case .pending, .notMet:
        proposals.append(
          Proposal(replicas: current, reason: .scaleDownRule, detail: "scale_down rule not met"))
      }
    }
    return proposals
  }

  private func trackingProposal(_ tracking: TargetTracking) -> Proposal {
    guard let value = signals[tracking.metric] else {
      return Proposal(
        replicas: current, reason: .signalMissing, detail: "\(tracking.metric) missing")
    }
    // Activation comes before the tolerance band, as in KEDA, so that more load never means
    // fewer replicas: at or below the threshold no replica is needed, whatever runs now.
    if target.min == 0 && value <= tracking.activationThreshold {
      return Proposal(
        replicas: 0, reason: .targetTracking,
        detail:
          "\(tracking.metric) \(format(value)) is at or below the activation threshold \(format(tracking.activationThreshold)): no replica needed"
      )
    }
    var proposal: Proposal
    switch tracking.kind {
    case .utilization: proposal = utilizationProposal(tracking, value: value)
    case .averageValue: proposal = averageValueProposal(tracking, value: value)
    }
    if target.min == 0 && proposal.replicas < 1 {
      proposal.replicas = 1
      proposal.detail += "; above the activation threshold \(format(tracking.activationThreshold)), so 1"
    }
    return proposal
  }

  private func averageValueProposal(_ tracking: TargetTracking, value: Double) -> Proposal {
    if current > 0 {
      let ratio = value / (tracking.target * Double(current))
      if withinTolerance(ratio, tracking.tolerance) {
        return Proposal(
          replicas: current, reason: .targetTracking,
          detail:
            "\(tracking.metric) \(format(value)) is within \(format(tracking.tolerance * 100))% of target \(format(tracking.target)) × \(current)"
        )
      }
    }
    let desired = ceilCount(value / tracking.target)
    return Proposal(
      replicas: desired, reason: .targetTracking,
      detail:
        "\(tracking.metric) \(format(value)) / target \(format(tracking.target)) per replica → \(desired)")
  }

  /// The HPA's replica calculator: the value is the mean over ready replicas. Replicas still
  /// starting count as 0% on a scale-up, so they are not asked to carry load they cannot take
  /// yet, and at the target on a scale-down, so they are never the reason to remove any (the
  /// HPA ignores them there; Capstan treats them as it treats pods with no metrics). When that
  /// flips the direction, the count holds.
  private func utilizationProposal(_ tracking: TargetTracking, value: Double) -> Proposal {
    let ready = min(status.ready, current)
    let metric = "\(tracking.metric) \(format(value))%"
    guard ready > 0 else {
      return Proposal(
        replicas: current, reason: .targetTracking, detail: "\(metric) cannot be judged with no ready replica"
      )
    }
    let ratio = value / tracking.target
    let unready = current - ready
    let band = "\(format(tracking.tolerance * 100))% of target \(format(tracking.target))%"
    guard unready > 0, !withinTolerance(ratio, tracking.tolerance) else {
      if withinTolerance(ratio, tracking.tolerance) {
        return Proposal(replicas: current, reason: .targetTracking, detail: "\(metric) is within \(band)")
      }
      let desired = ceilCount(Double(ready) * ratio)
      return Proposal(
        replicas: desired, reason: .targetTracking,
        detail:
          "\(metric) per replica on \(ready) ready vs target \(format(tracking.target))%: \(ready) × \(format(value)) / \(format(tracking.target)) → \(desired)"
      )
    }
    let assumed = ratio > 1 ? 0.0 : 1.0
    let adjusted = (ratio * Double(ready) + assumed * Double(unready)) / Double(current)
    let assumption =
      "\(unready) of \(current) replicas not ready yet count as \(ratio > 1 ? "0%" : "at the target"): \(format(adjusted * tracking.target))%"
    if withinTolerance(adjusted, tracking.tolerance) || (ratio > 1) != (adjusted > 1) {
      return Proposal(
        replicas: current, reason: .targetTracking,
        detail: "\(metric) on \(ready) ready; \(assumption), so no change until they are ready",
        readyOnly: ceilCount(Double(ready) * ratio))
    }
    let desired = ceilCount(adjusted * Double(current))
    return Proposal(
      replicas: desired, reason: .targetTracking,
      detail:
        "\(metric) on \(ready) ready; \(assumption); \(current) × \(format(adjusted * tracking.target)) / \(format(tracking.target)) → \(desired)"
    )
  }

  private enum RuleOutcome {
    case fires(String)
    case pending
    case notMet
    case missing(String)
  }

  private func evaluate(_ rule: ScaleRule, since: inout Date?) -> RuleOutcome {
    var held: [String] = []
    var failed = false
    var missing: [String] = []
    for condition in rule.conditions {
      guard let value = signals[condition.metric] else {
        missing.append(condition.metric)
        continue
      }
      if condition.op.holds(value, condition.threshold.value) {
        held.append("\(condition.text) (\(format(value)))")
      } else {
        failed = true
      }
    }
    let holds: Bool?
    switch rule.match {
    case .any: holds = held.isEmpty ? (missing.isEmpty ? false : nil) : true
    case .all: holds = failed ? false : (missing.isEmpty ? true : nil)
    }
    guard holds == true else {
      since = nil
      return holds == nil ? .missing(missing.joined(separator: ", ")) : .notMet
    }
    let start = since ?? now
    since = start
    guard now.timeIntervalSince(start) >= rule.duration else { return .pending }
    let lasting = rule.duration > 0 ? " for \(format(rule.duration))s" : ""
    return .fires(held.joined(separator: rule.match == .any ? " or " : " and ") + lasting)
  }

  // MARK: Stabilization and limits

  /// The HPA's rule: the lowest recommendation in the scale-up window and the highest in the
  /// scale-down window bound the change, so a brief dip or spike does not move the count.
  private func stabilize(_ recommendation: Int, _ state: inout TargetState) -> Int {
    let horizon = max(target.up.stabilization, target.down.stabilization)
    if state.recommendations.isEmpty && state.lastScaleUp == nil && state.lastScaleDown == nil {
      // First sight of this target (a fresh start or a new policy): what runs now counts as a
      // recommendation, so starting the controller never scales down before a full window.
      state.recommendations.append(.init(time: now, replicas: bound(current)))
    }
    state.recommendations.removeAll { now.timeIntervalSince($0.latest) >= horizon }
    if let last = state.recommendations.indices.last, state.recommendations[last].replicas == recommendation {
      state.recommendations[last].until = now
    } else {
      state.recommendations.append(.init(time: now, replicas: recommendation))
    }
    var upBound = recommendation
    var downBound = recommendation
    for past in state.recommendations {
      let age = now.timeIntervalSince(past.latest)
      if age < target.up.stabilization { upBound = min(upBound, past.replicas) }
      if age < target.down.stabilization { downBound = max(downBound, past.replicas) }
    }
    var result = current
    if result < upBound { result = upBound }
    if result > downBound { result = downBound }
    return result
  }

  private func applyLimits(to proposed: Int, state: TargetState, clamps: inout [Clamp]) -> Int {
    var next = proposed
    func clamp(_ reason: ScaleReason, to value: Int, _ detail: String) {
      guard value != next else { return }
      clamps.append(Clamp(reason: reason, before: next, after: value, detail: detail))
      next = value
    }
    // Steps and cooldowns, one rule for both directions.
    for direction in ScaleDirection.allCases where (direction == .up) == (next > current) && next != current {
      let rules = target.rules(direction)
      let sign = direction == .up ? 1 : -1
      let relative = rules.stepPercent.map { Int(saturating: (Double(current) * $0 / 100).rounded(.up)) }
      if let step = [rules.step, relative].compactMap({ $0 }).max(), abs(next - current) > step {
        let key = direction == .up ? "add_instances" : "remove_instances"
        let detail =
          relative == nil
          ? "\(key) is \(step) per step"
          : "at most \(step) per step (the larger of \(rules.step ?? 0) and \(format(rules.stepPercent ?? 0))%)"
        clamp(.stepSize, to: current.saturatingAdd(sign * step), detail)
      }
      let last = direction == .up ? state.lastScaleUp : state.lastScaleDown
      if let last, now.timeIntervalSince(last) < rules.cooldown {
        let left = rules.cooldown - now.timeIntervalSince(last)
        clamp(
          .cooldown, to: current,
          "the \(direction.rawValue) cooldown of \(format(rules.cooldown))s has \(format(left))s left")
      }
    }
    // Ceilings stop growth; they never force a scale-down of what already runs.
    var ceilings: [Ceiling] = []
    if let cost = Ceilings.cost(target) { ceilings.append(cost) }
    if let provider, let rate = Ceilings.rateLimit(target, provider: provider, others: others) {
      ceilings.append(rate)
    }
    if let pool, let gpu = Ceilings.gpuPool(target, pool: pool, othersGPUs: others.gpus) {
      ceilings.append(gpu)
    }
    for ceiling in ceilings {
      let allowed = ceiling.replicas - status.draining
      guard next > current && next > allowed else { continue }
      let draining = status.draining > 0 ? ", less \(status.draining) still draining" : ""
      clamp(ceiling.reason, to: max(current, allowed), ceiling.explanation + draining)
    }
    if next > current, let ledger, ledger.state == .frozen, let breaker = target.budget {
      clamp(
        .budgetFrozen, to: current,
        "the daily budget is frozen at \(usd(ledger.spentUSD)) of \(usd(breaker.dailyBudgetUSD)) until the next budget day"
      )
    }
    return next
  }

  private func bound(_ replicas: Int) -> Int { min(max(replicas, target.min), target.max) }

  private func boundDetail(_ reason: ScaleReason) -> String {
    reason == .maxInstances ? "\(target.maxSource.rawValue) is \(target.max)" : "min is \(target.min)"
  }

  private func moveReason(next: Int, wanted: Int, driver: Proposal?) -> ScaleReason {
    if let driver, (next > current) == (wanted > current), wanted != current { return driver.reason }
    return next > current ? .minInstances : .maxInstances
  }

  private func event(_ kind: AuditEventKind, to: Int, reason: ScaleReason, detail: String, after: Int)
    -> AuditEvent
  {
    AuditEvent(
      time: now, process: target.name, kind: kind, from: current, to: to, reason: reason, detail: detail,
      signals: signalValues(target, signals),
      budget: ledger.flatMap { ledger in
        target.budget.map {
          BudgetSnapshot(spentUSD: ledger.spentUSD, limitUSD: $0.dailyBudgetUSD, state: ledger.state)
        }
      },
      costPerHourUSD: target.costPerHourUSD.map { $0 * Double(after) })
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
