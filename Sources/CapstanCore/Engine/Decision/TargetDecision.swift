import Foundation

/// One target's decision at one tick, as the list of steps `docs/engine.md` gives. Each step is
/// a small function that takes the count so far and returns the next, noting in a `ClampTrail`
/// what moved it and why; the records' sentences are written only when a record is, from the
/// numbers the proposals and clamps keep (`AuditSentences.swift`).
///
/// Step 1, the budget, runs before this in `ScalingEngine.advanceBudget`, since its spend
/// accrues whether or not the target is decided.
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
  /// Its count, kept apart so that reading it does not copy the floor.
  var floorReplicas: Int? = nil
  /// For an SLO-sized target with a forecast: the load its profile expects a startup ahead.
  var seasonal: SeasonalLoad? = nil
  /// What the budgets of `budgets:` above it say this tick; nil where it is in none.
  var tree: TreeBinding? = nil
  /// For a process with variants, its replicas in units of capacity, exactly: `status` counts
  /// whole units.
  var capacity: ExactCapacity? = nil

  var target: ScalingTarget { prepared.target }
  var provider: ProviderLimits? { prepared.provider }
  var pool: GPUPool? { prepared.pool }

  var current: Int { status.current }

  /// Appends the target's action, if any, and its records to the tick's.
  func decide(_ state: inout TargetState, into decision: inout TickDecision) {
    noteExternalChange(since: state.lastReplicas, into: &decision)
    // Someone else moved the count: what held the last one is news for this one.
    if let last = state.lastReplicas, last != current { state.blocksWritten = nil }
    let firstEvent = decision.events.endIndex
    let proposals = propose(&state)
    let combined = combine(proposals)
    var clamps = ClampTrail()
    let recommended = boundRecommendation(combined, clamps: &clamps)
    var next = stabilize(recommended.replicas, &state, clamps: &clamps)
    next = applyLimits(to: next, state: state, clamps: &clamps)
    var outcome = Outcome(replicas: next)
    bindMinMax(&outcome, state: &state)
    raiseToPredictiveFloor(&outcome, clamps: &clamps)
    if outcome.boundClamp == nil, recommended.raisedByFloor, outcome.replicas > current,
      outcome.replicas > combined.wanted
    {
      // The floor, not the rules, moved the count.
      outcome.boundClamp = Clamp(
        reason: .predictiveFloor, before: combined.wanted, after: outcome.replicas, basis: .predictive)
    }
    holdForDraining(&outcome, clamps: &clamps)
    record(outcome, combined: combined, proposals: proposals, clamps: clamps, state: &state, into: &decision)
    if case .slo(let sizing)? = proposals.slo?.basis {
      // Each record of an SLO-sized decision carries the models and the arithmetic.
      for index in firstEvent..<decision.events.endIndex { decision.events[index].slo = sizing }
    }
  }

  // MARK: Steps 3 and 4: combine, and the missing-data veto

  /// The count the proposals want together, the proposal that drives it, and a scale-down that
  /// missing data vetoed.
  struct Combined {
    var wanted: Int
    var driver: Proposal?
    var vetoedByMissingData: Proposal?
  }

  /// Scale up to the highest proposal; scale down only when every proposal agrees and no
  /// signal a proposal reads is missing (whichever proposal it feeds, whatever `match:` says).
  func combine(_ proposals: Proposals) -> Combined {
    var combined = Combined(wanted: current)
    guard let top = proposals.highest else { return combined }
    let anyMissing = proposals.readMissingSignal
    if top.replicas > current || (proposals.all(below: current) && !anyMissing) {
      combined.wanted = top.replicas
      combined.driver = top
    } else if anyMissing, let down = proposals.highest(below: current) {
      combined.vetoedByMissingData = down
    }
    return combined
  }

  // MARK: Step 5: bound the recommendation, and the predictive floor

  /// [min, max] bound what is stored as a recommendation, so a window never holds a count
  /// outside them. The predictive floor is a raised min for the recommendation, so the
  /// scale-down window holds it a while after it falls, as it holds any recommendation.
  func boundRecommendation(_ combined: Combined, clamps: inout ClampTrail) -> (
    replicas: Int, raisedByFloor: Bool
  ) {
    let wanted = combined.wanted
    let bounded = bound(wanted)
    if bounded != wanted {
      let reason: ScaleReason = bounded < wanted ? .maxInstances : .minInstances
      if bounded < wanted && wanted > current || bounded > wanted && wanted < current
        || combined.driver == nil
      {
        clamps.append(Clamp(reason: reason, before: wanted, after: bounded, basis: .bound(reason)))
      }
    }
    guard let floorReplicas, floorReplicas > bounded else { return (bounded, false) }
    clamps.append(Clamp(reason: .predictiveFloor, before: bounded, after: floorReplicas, basis: .predictive))
    return (floorReplicas, true)
  }

  // MARK: Step 8: min and max last, then the predictive floor, then draining replicas

  /// The count after the limits, and the bound (if any) that moved it last: a bound names the
  /// action's reason, ahead of the proposal that drove it.
  struct Outcome {
    var replicas: Int
    var boundClamp: Clamp? = nil
  }

  /// `min` and `max` over windows, steps, cooldowns, ceilings and a frozen budget; then the
  /// count Capstan ran before a restart, which its local replicas stopped with.
  func bindMinMax(_ outcome: inout Outcome, state: inout TargetState) {
    let next = outcome.replicas
    if bound(next) != next {
      let reason: ScaleReason = bound(next) > next ? .minInstances : .maxInstances
      outcome.boundClamp = Clamp(reason: reason, before: next, after: bound(next), basis: .bound(reason))
      outcome.replicas = bound(next)
    }
    if let restore = state.restoreTo.map(bound), outcome.replicas < restore {
      outcome.boundClamp = Clamp(
        reason: .restore, before: outcome.replicas, after: restore, basis: .restore(restore))
      outcome.replicas = restore
    }
    if let restore = state.restoreTo, current >= Swift.min(restore, target.max) { state.restoreTo = nil }
  }

  /// The predictive floor over steps, cooldowns and windows, as min is, for a replica asked
  /// for late is late; but not over the ceilings or a frozen budget: a forecast spends no money
  /// the policy forbids.
  func raiseToPredictiveFloor(_ outcome: inout Outcome, clamps: inout ClampTrail) {
    guard let floorReplicas, outcome.replicas < floorReplicas else { return }
    var trail = ClampTrail()
    let reach = applyCeilings(to: floorReplicas, clamps: &trail)
    if let cut = trail.last { clamps.append(cut) }
    guard reach > outcome.replicas else { return }
    outcome.boundClamp = Clamp(
      reason: .predictiveFloor, before: outcome.replicas, after: reach, basis: .predictive)
    outcome.replicas = reach
  }

  /// Replicas still draining hold their place: growth stops at max less them, whatever the
  /// floor.
  func holdForDraining(_ outcome: inout Outcome, clamps: inout ClampTrail) {
    let room = target.max - status.draining
    guard status.draining > 0, outcome.replicas > current, outcome.replicas > room else { return }
    let held = Swift.max(current, room)
    if outcome.boundClamp != nil {
      outcome.boundClamp?.after = held
      outcome.boundClamp?.heldForDraining = held
    } else {
      clamps.append(
        Clamp(reason: .maxInstances, before: outcome.replicas, after: held, basis: .draining(status.draining))
      )
    }
    outcome.replicas = held
  }

  func bound(_ replicas: Int) -> Int { min(max(replicas, target.min), target.max) }
}
