import Foundation

/// Step 7: the limits, in order, each with its reason code: step size, cooldown, then the
/// ceilings (cost, provider rate limit, GPU pool) and a frozen budget. One rule type per
/// direction (`ScalingTarget.rules(_:)`), as the HPA's `behavior` has.
extension TargetContext {
  func applyLimits(to proposed: Int, state: TargetState, clamps: inout ClampTrail) -> Int {
    guard proposed != current else { return applyCeilings(to: proposed, clamps: &clamps) }
    let direction: ScaleDirection = proposed > current ? .up : .down
    var next = limitStep(proposed, direction, clamps: &clamps)
    next = limitCooldown(next, direction, state: state, clamps: &clamps)
    return applyCeilings(to: next, clamps: &clamps)
  }

  /// `step_size`: at most the direction's step (the larger of the fixed and the percentage
  /// step, where both are set) away from the current count.
  func limitStep(_ proposed: Int, _ direction: ScaleDirection, clamps: inout ClampTrail) -> Int {
    let rules = target.rules(direction)
    let relative = rules.stepPercent.map { Int(saturating: (Double(current) * $0 / 100).rounded(.up)) }
    let step: Int? =
      switch (rules.step, relative) {
      case (let fixed?, let relative?): Swift.max(fixed, relative)
      case (let fixed, let relative): fixed ?? relative
      }
    guard let step, abs(proposed - current) > step else { return proposed }
    let sign = direction == .up ? 1 : -1
    let basis = Clamp.Basis.step(
      direction, step: step, relative: relative != nil, fixed: rules.step, percent: rules.stepPercent)
    return clamps.record(.stepSize, from: proposed, to: current.saturatingAdd(sign * step), basis)
  }

  /// `cooldown`: no move in a direction until its cooldown has passed since the last one.
  func limitCooldown(
    _ proposed: Int, _ direction: ScaleDirection, state: TargetState, clamps: inout ClampTrail
  ) -> Int {
    let rules = target.rules(direction)
    guard let last = direction == .up ? state.lastScaleUp : state.lastScaleDown,
      now.timeIntervalSince(last) < rules.cooldown
    else { return proposed }
    let left = rules.cooldown - now.timeIntervalSince(last)
    return clamps.record(
      .cooldown, from: proposed, to: current, .cooldown(direction, cooldown: rules.cooldown, left: left))
  }

  /// The ceiling a clamp's reason names, from this tick's numbers.
  func ceiling(_ reason: ScaleReason) -> Ceiling? {
    switch reason {
    case .costCeiling: Ceilings.cost(target)
    case .rateLimitCeiling: provider.flatMap { Ceilings.rateLimit(target, provider: $0, others: others) }
    case .gpuPool: pool.flatMap { Ceilings.gpuPool(target, pool: $0, othersGPUs: others.gpus) }
    default: nil
    }
  }

  /// `cost_ceiling`, `rate_limit_ceiling`, `gpu_pool`, `budget_cap`, then `budget_frozen`.
  /// Ceilings stop growth; they never force a scale-down of what already runs. Then a frozen
  /// budget, its own or one above it, stops it altogether.
  func applyCeilings(to proposed: Int, clamps: inout ClampTrail) -> Int {
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
      // A share of a provider divided between budgets first: where it binds, the room left
      // by the others' use binds at the same count, and the share is the reason.
      if let ceiling = tree?.providerCeiling {
        let allowed = ceiling - status.draining
        if next > allowed {
          next = clamps.record(.rateLimitCeiling, from: next, to: max(current, allowed), .providerShare)
        }
      }
      if let provider {
        apply(
          .rateLimitCeiling, Ceilings.rateLimitReplicas(target, provider: provider, others: others)?.replicas)
      }
      if let pool { apply(.gpuPool, Ceilings.gpuPoolReplicas(target, pool: pool, othersGPUs: others.gpus)) }
      if let ceiling = tree?.ceiling {
        let allowed = ceiling - status.draining
        if next > allowed {
          next = clamps.record(.budgetCap, from: next, to: max(current, allowed), .budgetShare)
        }
      }
    }
    if next > current, let budget, budget.state == .frozen {
      next = clamps.record(
        .budgetFrozen, from: next, to: current, .budgetFrozen(spent: budget.spentUSD, limit: budget.limitUSD))
    }
    if next > current, tree?.frozenBy != nil {
      next = clamps.record(.budgetFrozen, from: next, to: current, .frozenAbove)
    }
    return next
  }
}
