import Foundation

/// One replica count some part of the policy asks for, and why.
struct Proposal {
  var replicas: Int
  var reason: ScaleReason
  /// Why, as numbers: the sentence is written only when a record needs it, because a tick that
  /// changes nothing should cost no formatting.
  var basis: Basis
  /// Whether the activation threshold raised a count below 1 to 1, for a process that may
  /// reach 0.
  var raisedToOne = false
  /// A hold because replicas are still starting: what counting only the ready ones would give.
  var readyOnly: Int? = nil

  /// Small on purpose: the tracking and the rules are the target's, and the current and ready
  /// counts the context's, read back when a record is written, so a proposal copies as a few
  /// numbers (and two of them, with a flag, fit the 128 bytes a copy moves without `memmove`).
  enum Basis {
    case trackingMissing
    case belowActivation(value: Double)
    case averageWithin(value: Double)
    case averageDesired(value: Double, desired: Int)
    case noReadyReplica(value: Double)
    case utilizationWithin(value: Double)
    case utilizationDesired(value: Double, desired: Int)
    /// Replicas still starting: what the ready ones show, and the mean once those count.
    case utilizationStarting(value: Double, adjusted: Double, desired: Int?)
    case scaleUpRuleFires(step: Int)
    case scaleDownRuleFires(step: Int)
    case scaleDownRuleMissing
    case scaleDownRuleNotMet
  }
}

/// One clamp that lowered (or raised) the count on the way from wanted to decided.
struct Clamp {
  var reason: ScaleReason
  var before: Int
  var after: Int
  var basis: Basis
  /// Replicas still draining held growth further, at this count (after a min or restore floor).
  var heldForDraining: Int? = nil

  enum Basis {
    case bound(ScaleReason)
    case stabilization(up: Bool, window: TimeInterval, holding: Int)
    case step(ScaleDirection, step: Int, relative: Bool, fixed: Int?, percent: Double?)
    case cooldown(ScaleDirection, cooldown: TimeInterval, left: TimeInterval)
    /// The ceiling named by the clamp's reason, worked out again from the same numbers when a
    /// record describes it: a clamp of plain numbers is dropped and copied as plain memory.
    case ceiling(draining: Int)
    case budgetFrozen(spent: Double, limit: Double)
    case restore(Int)
    case draining(Int)
    /// The tick's predictive floor, kept by the context.
    case predictive
  }
}

/// One target of a policy with what every tick needs and the policy fixes, worked out once.
final class PreparedTarget: Sendable {
  let target: ScalingTarget
  /// The signals its proposals read, with their places in the tick's table: any of them
  /// missing vetoes a scale-down, and a record names the missing ones.
  let proposalSignals: [(name: String, position: Int?)]
  let provider: ProviderLimits?
  let pool: GPUPool?
  /// The other targets on the same provider or GPU pool, in policy order, with what one replica
  /// of each takes from them.
  let peers: [PeerShare]
  /// Where the signals it reads sit in a tick's `SignalTable`.
  let trackingPosition: Int?
  let upConditionPositions: ConditionPositions
  let downConditionPositions: ConditionPositions
  let costRatePosition: Int?
  let predictivePosition: Int?
  let isPredictive: Bool
  /// The signals a record lists, with their places in the tick's table, worked out once: a
  /// record looked each name up and built the list again.
  let recordSignals: [(name: String, position: Int?)]
  let hasBudget: Bool

  /// - Parameter sharing: the targets on each provider and on each GPU pool, in policy order.
  init(_ target: ScalingTarget, in policy: Policy, positions: [String: Int], sharing: TargetsSharing) {
    self.target = target
    trackingPosition = target.tracking.flatMap { positions[$0.metric] }
    // Every name a target reads is among the engine's signals, so each has a position.
    upConditionPositions = (target.up.rule?.conditions ?? []).map { positions[$0.metric] ?? 0 }
    downConditionPositions = (target.down.rule?.conditions ?? []).map { positions[$0.metric] ?? 0 }
    costRatePosition = target.budget?.costRateMetric.flatMap { positions[$0] }
    predictivePosition = target.predictive.flatMap { positions[$0.signal] }
    isPredictive = target.predictive != nil
    recordSignals = target.signalNames.map { ($0, positions[$0]) }
    hasBudget = target.budget != nil
    proposalSignals = target.proposalSignalNames.map { ($0, positions[$0]) }
    provider = target.rateLimit.flatMap { policy.provider(named: $0.provider) }
    pool = target.resources.gpuPool.flatMap { policy.gpuPool(named: $0) }
    // Found through the groups, not by comparing every pair: a policy of 10,000 targets would
    // take 100 million comparisons to load.
    let onProvider = target.rateLimit.map { sharing.provider[$0.provider] ?? [] } ?? []
    let inPool = target.resources.gpuPool.map { sharing.pool[$0] ?? [] } ?? []
    peers = Array(Set(onProvider + inPool).subtracting([sharing.index[target.name] ?? -1])).sorted().map {
      PeerShare(policy.targets[$0], at: $0, sharingWith: target)
    }
  }
}

/// Another target on a target's provider or GPU pool, and what one replica of it takes from
/// them: worked out once, so a tick adds up numbers rather than reading each peer's settings.
struct PeerShare {
  let index: Int
  /// To find its action when it was decided earlier in the same tick.
  let name: String
  /// Per replica, from the shared provider (0 on another provider).
  var tokensPerMinute = 0.0
  var requestsPerMinute = 0.0
  var concurrentRequests = 0.0
  /// Per replica, from the shared GPU pool (0 in another pool).
  var gpus = 0

  init(_ peer: ScalingTarget, at index: Int, sharingWith target: ScalingTarget) {
    self.index = index
    name = peer.name
    if let share = peer.rateLimit, share.provider == target.rateLimit?.provider {
      tokensPerMinute = share.tokensPerMinutePerReplica ?? 0
      requestsPerMinute = share.requestsPerMinutePerReplica ?? 0
      concurrentRequests = share.concurrentRequestsPerReplica ?? 0
    }
    if let pool = peer.resources.gpuPool, pool == target.resources.gpuPool { gpus = peer.resources.gpus }
  }
}

/// Which targets (by index, in policy order) share each provider and each GPU pool.
struct TargetsSharing {
  var provider: [String: [Int]] = [:]
  var pool: [String: [Int]] = [:]
  var index: [String: Int] = [:]

  init(_ policy: Policy) {
    for (index, target) in policy.targets.enumerated() {
      self.index[target.name] = index
      if let name = target.rateLimit?.provider { provider[name, default: []].append(index) }
      if let name = target.resources.gpuPool { pool[name, default: []].append(index) }
    }
  }
}

/// The clamps of one decision in the order they applied. The first two are held inline: most
/// decisions that clamp at all clamp once or twice, and allocating for them was two allocations
/// in every three rows of a replay. A clamp is plain numbers, so the two empty places cost two
/// bytes to set up. (A trail of twelve held inline was 1.4 KB, set up and copied every time.)
struct ClampTrail {
  private var head: (Clamp?, Clamp?) = (nil, nil)
  private var rest: [Clamp] = []
  private var count = 0

  private func clamp(at index: Int) -> Clamp? {
    switch index {
    case 0: head.0
    case 1: head.1
    default: rest[index - 2]
    }
  }

  mutating func append(_ clamp: Clamp) {
    switch count {
    case 0: head.0 = clamp
    case 1: head.1 = clamp
    default: rest.append(clamp)
    }
    count += 1
  }

  /// Records a clamp from `from` to `to` (none when they are equal) and returns the new count.
  mutating func record(_ reason: ScaleReason, from: Int, to: Int, _ basis: Clamp.Basis) -> Int {
    if to != from { append(Clamp(reason: reason, before: from, after: to, basis: basis)) }
    return to
  }

  var first: Clamp? { head.0 }
  var last: Clamp? { count == 0 ? nil : clamp(at: count - 1) }

  func last(where matches: (Clamp) -> Bool) -> Clamp? {
    var index = count - 1
    while index >= 0 {
      if let clamp = clamp(at: index), matches(clamp) { return clamp }
      index -= 1
    }
    return nil
  }
}

/// One target's decision at one tick: proposals, then stabilization, then the clamps in order
/// (min/max, step size, cooldown, cost ceiling, rate-limit ceiling, GPU pool, budget freeze).
/// Sentences for the audit records are written only when a record is, from the numbers the
/// proposals and clamps keep.
struct TargetContext {
  /// The target and what the engine worked out from the policy for it, shared by reference so
  /// that a tick copies none of it.
  let prepared: PreparedTarget
  let status: ReplicaStatus
  let signals: SignalTable
  let now: Date
  /// The budget's state after this tick's spend; nil where the target has none. Numbers only,
  /// so the context copies and drops as plain memory.
  let budget: BudgetSnapshot?
  let others: SharedUsage
  /// The predictive floor at this tick; nil where the target has none or it is off.
  var floor: PredictiveFloor? = nil
  /// Its count, which every tick reads: reading it through the optional floor copied the floor.
  var floorReplicas: Int? = nil

  var target: ScalingTarget { prepared.target }
  var provider: ProviderLimits? { prepared.provider }
  var pool: GPUPool? { prepared.pool }

  var current: Int { status.current }

  /// What a blocked record says, kept until the record is written.
  private enum Block {
    /// The decision's driver, if any, is added when the record is written: held here, it made a
    /// block too large to copy without `memmove`, and it was copied on every decision.
    case clamp(Clamp)
    case missingData(Proposal)
    case notReady(Proposal)
  }

  /// Appends the target's action, if any, and its records to the tick's: returning them as an
  /// optional action and an array cost more than deciding a steady target.
  func decide(_ state: inout TargetState, into decision: inout TickDecision) {
    // A local, so the closures below capture a number rather than a copy of the whole context.
    let current = status.current
    if let expected = state.lastReplicas, expected != current {
      decision.events.append(
        AuditEvent(
          time: now, process: target.name, kind: .externalChange, from: expected, to: current,
          reason: .externalChange,
          detail:
            "replicas are \(current), not the \(expected) Capstan last saw or set: someone else changed them; deciding from \(current)",
          signals: signals.values(of: prepared), budget: nil,
          costPerHourUSD: target.costPerHourUSD.map { $0 * Double(current) }))
    }
    let proposals = self.proposals(&state)
    // Any signal a proposal reads that is missing vetoes a scale-down (rule 4), whichever
    // proposal it feeds and whatever a rule's `match:` says.
    let anyMissing = proposals.readMissingSignal

    // Scale up to the highest proposal; scale down only when every proposal agrees.
    var wanted = current
    var driver: Proposal?
    var vetoedByMissingData: Proposal?
    if let top = proposals.highest {
      let down = proposals.highest(below: current)
      if top.replicas > current || (proposals.all(below: current) && !anyMissing) {
        wanted = top.replicas
        driver = top
      } else if let down, anyMissing {
        vetoedByMissingData = down
      }
    }

    // [min, max] bound what is stored as a recommendation, so a window never holds a count
    // outside them, and bind again last, over stabilization, steps, cooldowns and ceilings.
    var clamps = ClampTrail()
    var bounded = bound(wanted)
    if bounded != wanted {
      let reason: ScaleReason = bounded < wanted ? .maxInstances : .minInstances
      if bounded < wanted && wanted > current || bounded > wanted && wanted < current || driver == nil {
        clamps.append(Clamp(reason: reason, before: wanted, after: bounded, basis: .bound(reason)))
      }
    }
    // The predictive floor is a raised min for the recommendation, so the scale-down window
    // holds it a while after it falls, as it holds any recommendation.
    var raisedByFloor = false
    if let floorReplicas, floorReplicas > bounded {
      clamps.append(
        Clamp(reason: .predictiveFloor, before: bounded, after: floorReplicas, basis: .predictive))
      bounded = floorReplicas
      raisedByFloor = true
    }

    var next = stabilize(bounded, &state)
    if next != bounded {
      let up = bounded > next
      clamps.append(
        Clamp(
          reason: .stabilization, before: bounded, after: next,
          basis: .stabilization(up: up, window: target.rules(up ? .up : .down).stabilization, holding: next)))
    }
    next = applyLimits(to: next, state: state, clamps: &clamps)
    var boundClamp: Clamp?
    if bound(next) != next {
      let reason: ScaleReason = bound(next) > next ? .minInstances : .maxInstances
      boundClamp = Clamp(reason: reason, before: next, after: bound(next), basis: .bound(reason))
      next = bound(next)
    }
    if let restore = state.restoreTo.map(bound), next < restore {
      boundClamp = Clamp(reason: .restore, before: next, after: restore, basis: .restore(restore))
      next = restore
    }
    // Over steps, cooldowns and windows, as min is, for a replica asked for late is late; but
    // not over the ceilings or a frozen budget: a forecast spends no money the policy forbids.
    if let floorReplicas, next < floorReplicas {
      var trail = ClampTrail()
      let reach = applyCeilings(to: floorReplicas, clamps: &trail)
      if let cut = trail.last { clamps.append(cut) }
      if reach > next {
        boundClamp = Clamp(reason: .predictiveFloor, before: next, after: reach, basis: .predictive)
        next = reach
      }
    }
    if boundClamp == nil, raisedByFloor, next > current, next > wanted {
      // The floor, not the rules, moved the count.
      boundClamp = Clamp(reason: .predictiveFloor, before: wanted, after: next, basis: .predictive)
    }
    // Replicas still draining hold their place: growth stops at max less them, whatever the floor.
    let room = target.max - status.draining
    if status.draining > 0, next > current, next > room {
      let held = Swift.max(current, room)
      if boundClamp != nil {
        boundClamp?.after = held
        boundClamp?.heldForDraining = held
      } else {
        clamps.append(
          Clamp(reason: .maxInstances, before: next, after: held, basis: .draining(status.draining)))
      }
      next = held
    }
    if let restore = state.restoreTo, current >= Swift.min(restore, target.max) { state.restoreTo = nil }

    // Events: the change (if any), then what held it back (if anything).
    let moved = next != current
    state.lastReplicas = next
    if moved {
      let reason = boundClamp?.reason ?? moveReason(next: next, wanted: wanted, driver: driver)
      var detail: String
      if let boundClamp {
        // The bound moved the count itself: say so first, then what the policy wanted.
        detail = describe(boundClamp)
        if let driver { detail += "; wanted \(wanted) (\(describe(driver)))" }
        if let held = clamps.last(where: { $0.before != $0.after && $0.reason != boundClamp.reason }) {
          detail += "; \(describe(held))"
        }
      } else {
        detail = driver.map(describe) ?? clamps.first.map(describe) ?? ""
        if next != wanted, let last = clamps.last { detail += "; held at \(next) because \(describe(last))" }
      }
      decision.actions.append(
        ScaleAction(
          process: target.name, from: current, to: next, reason: reason, drainTimeout: target.drainTimeout,
          detail: detail))
      decision.events.append(
        event(next > current ? .scaleUp : .scaleDown, to: next, reason: reason, detail: detail, after: next))
      if next > current { state.lastScaleUp = now } else { state.lastScaleDown = now }
    }

    var blocked: (reason: ScaleReason, wanted: Int, why: Block)?
    // A clamp that raised a count toward the predictive floor blocks nothing; one that held a
    // scale-down above it does.
    if let binding = clamps.last(where: {
      $0.before != $0.after && $0.reason != .minInstances
        && !($0.reason == .predictiveFloor && $0.before >= current)
    }),
      binding.before != current, binding.before != next
    {
      blocked = (binding.reason, binding.before, .clamp(binding))
    } else if let vetoed = vetoedByMissingData, next == current {
      blocked = (.signalMissing, vetoed.replicas, .missingData(vetoed))
    }
    if blocked == nil, next == current, driver == nil,
      let starting = proposals.holdingForStarting(current),
      let readyOnly = starting.readyOnly
    {
      blocked = (.replicasNotReady, readyOnly, .notReady(starting))
    }
    if let blocked {
      let mark = TargetState.BlockedMark(reason: blocked.reason, wanted: blocked.wanted)
      if state.lastBlocked != mark {
        decision.events.append(
          event(
            .blocked, to: blocked.wanted, reason: blocked.reason,
            detail: describe(blocked.why, wanted: blocked.wanted, driver: driver), after: next))
      }
      state.lastBlocked = mark
    }
    // A block is reported again only after the count has moved; while it stays put, flapping
    // between the same wanted counts would otherwise repeat the same record every few ticks.
    if moved && blocked == nil { state.lastBlocked = nil }
  }

  // MARK: Proposals

  /// A target's proposals: its tracking, and its scale-up or scale-down rule. Plain fields and
  /// plain code rather than a Sequence: generic algorithms over them copied each proposal
  /// through value witnesses, which cost more than the decision.
  struct Proposals {
    var tracking: Proposal?
    var rule: Proposal?
    /// Whether a signal they read (the tracking metric, any condition of either rule) was missing,
    /// noted as they read it rather than looked up again.
    var readMissingSignal = false

    /// The highest; on a tie, the first (tracking before the rule).
    var highest: Proposal? { highest(below: nil) }

    /// The highest below `limit` (any with nil); on a tie, the first.
    func highest(below limit: Int?) -> Proposal? {
      func counts(_ proposal: Proposal?) -> Proposal? {
        guard let proposal, limit.map({ proposal.replicas < $0 }) ?? true else { return nil }
        return proposal
      }
      guard let first = counts(tracking) else { return counts(rule) }
      guard let second = counts(rule), second.replicas > first.replicas else { return first }
      return second
    }

    /// Whether every proposal is below `count` (true with none).
    func all(below count: Int) -> Bool {
      (tracking.map { $0.replicas < count } ?? true) && (rule.map { $0.replicas < count } ?? true)
    }

    /// The first that holds because replicas are still starting, wanting another count.
    func holdingForStarting(_ current: Int) -> Proposal? {
      if let tracking, let ready = tracking.readyOnly, ready != current { return tracking }
      if let rule, let ready = rule.readyOnly, ready != current { return rule }
      return nil
    }
  }

  private func proposals(_ state: inout TargetState) -> Proposals {
    var proposals = Proposals()
    if let tracking = target.tracking {
      let proposal = trackingProposal(tracking)
      if case .trackingMissing = proposal.basis { proposals.readMissingSignal = true }
      proposals.tracking = proposal
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

  private func trackingProposal(_ tracking: TargetTracking) -> Proposal {
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

  private func averageValueProposal(_ tracking: TargetTracking, value: Double) -> Proposal {
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
  private func utilizationProposal(_ tracking: TargetTracking, value: Double) -> Proposal {
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

  private enum RuleOutcome {
    case fires
    case pending
    case notMet
    case missing
  }

  /// - Parameter missing: set when a condition's signal has no value.
  private func evaluate(
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
    // Looked for before removing: most ticks remove nothing, and removing rewrote the array.
    // The closure captures a local time, not `self.now`, which would copy the whole context.
    let time = now
    let expired = { (past: TargetState.Recommendation) in time.timeIntervalSince(past.latest) >= horizon }
    if state.recommendations.contains(where: expired) { state.recommendations.removeAll(where: expired) }
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

  private func applyLimits(to proposed: Int, state: TargetState, clamps: inout ClampTrail) -> Int {
    var next = proposed
    // Steps and cooldowns, one rule for both directions.
    if next != current {
      let direction: ScaleDirection = next > current ? .up : .down
      let rules = target.rules(direction)
      let sign = direction == .up ? 1 : -1
      let relative = rules.stepPercent.map { Int(saturating: (Double(current) * $0 / 100).rounded(.up)) }
      let step: Int? =
        switch (rules.step, relative) {
        case (let fixed?, let relative?): Swift.max(fixed, relative)
        case (let fixed, let relative): fixed ?? relative
        }
      if let step, abs(next - current) > step {
        let basis = Clamp.Basis.step(
          direction, step: step, relative: relative != nil, fixed: rules.step, percent: rules.stepPercent)
        next = clamps.record(.stepSize, from: next, to: current.saturatingAdd(sign * step), basis)
      }
      if let last = direction == .up ? state.lastScaleUp : state.lastScaleDown,
        now.timeIntervalSince(last) < rules.cooldown
      {
        let left = rules.cooldown - now.timeIntervalSince(last)
        next = clamps.record(
          .cooldown, from: next, to: current, .cooldown(direction, cooldown: rules.cooldown, left: left))
      }
    }
    return applyCeilings(to: next, clamps: &clamps)
  }

  /// The ceiling a clamp's reason names, from this tick's numbers.
  private func ceiling(_ reason: ScaleReason) -> Ceiling? {
    switch reason {
    case .costCeiling: Ceilings.cost(target)
    case .rateLimitCeiling: provider.flatMap { Ceilings.rateLimit(target, provider: $0, others: others) }
    case .gpuPool: pool.flatMap { Ceilings.gpuPool(target, pool: $0, othersGPUs: others.gpus) }
    default: nil
    }
  }

  /// Ceilings stop growth; they never force a scale-down of what already runs. Then a frozen
  /// budget stops it altogether.
  private func applyCeilings(to proposed: Int, clamps: inout ClampTrail) -> Int {
    var next = proposed
    // One at a time, in clamp order, rather than gathered into an array on every growing tick;
    // as counts only, for a clamp's sentence works its ceiling out again (`ceiling(_:)`).
    func apply(_ reason: ScaleReason, _ ceiling: Int?) {
      guard let ceiling else { return }
      let allowed = ceiling - status.draining
      guard next > current && next > allowed else { return }
      next = clamps.record(reason, from: next, to: max(current, allowed), .ceiling(draining: status.draining))
    }
    if next > current {
      apply(.costCeiling, Ceilings.costReplicas(target))
      if let provider {
        apply(
          .rateLimitCeiling, Ceilings.rateLimitReplicas(target, provider: provider, others: others)?.replicas)
      }
      if let pool { apply(.gpuPool, Ceilings.gpuPoolReplicas(target, pool: pool, othersGPUs: others.gpus)) }
    }
    if next > current, let budget, budget.state == .frozen {
      next = clamps.record(
        .budgetFrozen, from: next, to: current, .budgetFrozen(spent: budget.spentUSD, limit: budget.limitUSD))
    }
    return next
  }

  private func bound(_ replicas: Int) -> Int { min(max(replicas, target.min), target.max) }

  private func moveReason(next: Int, wanted: Int, driver: Proposal?) -> ScaleReason {
    if let driver, (next > current) == (wanted > current), wanted != current { return driver.reason }
    return next > current ? .minInstances : .maxInstances
  }

  // MARK: Sentences

  private func describe(_ proposal: Proposal) -> String {
    var text: String
    // Tracking proposals exist only for a target that tracks; rule proposals only for its rules.
    let tracking = target.tracking
    let metric = tracking?.metric ?? ""
    let goal = format(tracking?.target ?? 0)
    let band = format((tracking?.tolerance ?? 0) * 100)
    switch proposal.basis {
    case .trackingMissing: text = "\(metric) missing"
    case .belowActivation(let value):
      text =
        "\(metric) \(format(value)) is at or below the activation threshold \(format(tracking?.activationThreshold ?? 0)): no replica needed"
    case .averageWithin(let value):
      text = "\(metric) \(format(value)) is within \(band)% of target \(goal) × \(current)"
    case .averageDesired(let value, let desired):
      text = "\(metric) \(format(value)) / target \(goal) per replica → \(desired)"
    case .noReadyReplica(let value):
      text = "\(metric) \(format(value))% cannot be judged with no ready replica"
    case .utilizationWithin(let value):
      text = "\(metric) \(format(value))% is within \(band)% of target \(goal)%"
    case .utilizationDesired(let value, let desired):
      let ready = status.readyWithinCurrent
      text =
        "\(metric) \(format(value))% per replica on \(ready) ready vs target \(goal)%: \(ready) × \(format(value)) / \(goal) → \(desired)"
    case .utilizationStarting(let value, let adjusted, let desired):
      let ready = status.readyWithinCurrent
      let goalValue = tracking?.target ?? 1
      let assumption =
        "\(current - ready) of \(current) replicas not ready yet count as \(value / goalValue > 1 ? "0%" : "at the target"): \(format(adjusted * goalValue))%"
      if let desired {
        text =
          "\(metric) \(format(value))% on \(ready) ready; \(assumption); \(current) × \(format(adjusted * goalValue)) / \(goal) → \(desired)"
      } else {
        text =
          "\(metric) \(format(value))% on \(ready) ready; \(assumption), so no change until they are ready"
      }
    case .scaleUpRuleFires(let step):
      text = "scale_up rule: \(firing(target.up.rule, at: prepared.upConditionPositions)), add \(step)"
    case .scaleDownRuleFires(let step):
      text =
        "scale_down rule: \(firing(target.down.rule, at: prepared.downConditionPositions)), remove \(step)"
    case .scaleDownRuleMissing:
      let conditions = target.down.rule?.conditions ?? []
      let missing = zip(conditions, prepared.downConditionPositions).filter { signals[$1] == nil }
        .map { condition, _ in condition.metric }
      text = "scale_down rule cannot be judged: \(missing.joined(separator: ", ")) missing"
    case .scaleDownRuleNotMet: text = "scale_down rule not met"
    }
    if proposal.raisedToOne {
      text += "; above the activation threshold \(format(tracking?.activationThreshold ?? 0)), so 1"
    }
    return text
  }

  /// The conditions of a firing rule that hold, with their values, and how long they held.
  private func firing(_ rule: ScaleRule?, at positions: ConditionPositions) -> String {
    guard let rule else { return "" }
    let held = zip(rule.conditions, positions).compactMap { condition, position -> String? in
      guard let value = signals[position], condition.op.holds(value, condition.threshold.value) else {
        return nil
      }
      return "\(condition.text) (\(format(value)))"
    }
    let lasting = rule.duration > 0 ? " for \(format(rule.duration))s" : ""
    return held.joined(separator: rule.match == .any ? " or " : " and ") + lasting
  }

  private func describe(_ clamp: Clamp) -> String {
    var text: String
    switch clamp.basis {
    case .bound(let reason):
      text =
        reason == .maxInstances ? "\(target.maxSource.rawValue) is \(target.max)" : "min is \(target.min)"
    case .stabilization(let up, let window, let holding):
      text =
        "the \(up ? "scale-up" : "scale-down") stabilization window of \(format(window))s still holds a recommendation of \(holding)"
    case .step(let direction, let step, let relative, let fixed, let percent):
      text =
        relative
        ? "at most \(step) per step (the larger of \(fixed ?? 0) and \(format(percent ?? 0))%)"
        : "\(direction == .up ? "add_instances" : "remove_instances") is \(step) per step"
    case .cooldown(let direction, let cooldown, let left):
      text = "the \(direction.rawValue) cooldown of \(format(cooldown))s has \(format(left))s left"
    case .ceiling(let draining):
      text =
        (ceiling(clamp.reason)?.explanation ?? clamp.reason.rawValue)
        + (draining > 0 ? ", less \(draining) still draining" : "")
    case .budgetFrozen(let spent, let limit):
      text = "the daily budget is frozen at \(usd(spent)) of \(usd(limit)) until the next budget day"
    case .restore(let restore):
      text =
        "restoring the \(restore) replicas Capstan ran before it restarted (its local replicas stop with it)"
    case .draining(let draining): text = drainingHold(draining)
    case .predictive: text = floor.map(describe) ?? "predictive floor"
    }
    if let held = clamp.heldForDraining {
      text += "; held at \(held) because \(drainingHold(status.draining))"
    }
    return text
  }

  private func describe(_ floor: PredictiveFloor) -> String {
    let signal = target.predictive?.signal ?? ""
    let today =
      floor.scale < 1 ? " × \(format((floor.scale * 1000).rounded() / 1000)) for today's level so far" : ""
    return
      "predictive floor \(floor.replicas): \(signal) forecast \(format(floor.forecast)) within \(DurationText.of(floor.lookahead))\(today) / \(format(floor.perReplica)) per replica"
  }

  private func drainingHold(_ draining: Int) -> String {
    "\(target.maxSource.rawValue) \(target.max) counts the \(draining) replicas still draining"
  }

  private func describe(_ block: Block, wanted: Int, driver: Proposal?) -> String {
    switch block {
    case .clamp(let binding):
      let prefix = driver.map { "wanted \(wanted) (\(describe($0)))" } ?? "wanted \(wanted)"
      return "\(prefix); \(describe(binding))"
    case .missingData(let vetoed):
      let missing = prepared.proposalSignals.filter { $0.position.flatMap { signals[$0] } == nil }.map(\.name)
      return
        "wanted \(wanted) (\(describe(vetoed))) but \(missing.joined(separator: ", ")) has no value: missing data never scales down"
    case .notReady(let starting):
      return "wanted \(wanted) on ready replicas alone; \(describe(starting))"
    }
  }

  private func event(_ kind: AuditEventKind, to: Int, reason: ScaleReason, detail: String, after: Int)
    -> AuditEvent
  {
    AuditEvent(
      time: now, process: target.name, kind: kind, from: current, to: to, reason: reason, detail: detail,
      signals: signals.values(of: prepared),
      budget: budget,
      costPerHourUSD: target.costPerHourUSD.map { $0 * Double(after) }, forecast: floor)
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
