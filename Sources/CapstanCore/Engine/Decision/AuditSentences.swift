import Foundation

/// The sentences of a target's records, written only when a record is, from the numbers its
/// proposals and clamps keep: a tick that changes nothing formats nothing.
extension TargetContext {
  /// Why the count moved: the bound that moved it first, if one did, then what the policy
  /// wanted and what held it.
  func moveSentence(_ outcome: Outcome, combined: Combined, clamps: ClampTrail) -> String {
    let wanted = combined.wanted
    var detail: String
    if let boundClamp = outcome.boundClamp {
      detail = describe(boundClamp)
      if let driver = combined.driver { detail += "; wanted \(wanted) (\(describe(driver)))" }
      if let held = clamps.last(where: { $0.before != $0.after && $0.reason != boundClamp.reason }) {
        detail += "; \(describe(held))"
      }
    } else {
      detail = combined.driver.map(describe) ?? clamps.first.map(describe) ?? ""
      if outcome.replicas != wanted, let last = clamps.last {
        detail += "; held at \(outcome.replicas) because \(describe(last))"
      }
    }
    return detail
  }

  func describe(_ proposal: Proposal) -> String {
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
      text = "\(metric) \(format(value)) / target \(goal) per \(prepared.unit) → \(desired)"
    case .noReadyReplica(let value):
      text = "\(metric) \(format(value))% cannot be judged with no ready replica"
    case .utilizationWithin(let value):
      text = "\(metric) \(format(value))% is within \(band)% of target \(goal)%"
    case .utilizationDesired(let value, let desired):
      let ready = status.readyWithinCurrent
      text =
        "\(metric) \(format(value))% per \(prepared.unit) on \(ready) ready vs target \(goal)%: \(ready) × \(format(value)) / \(goal) → \(desired)"
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
    case .slo(let sizing): text = describe(sizing)
    case .sloMissing(let signal): text = "\(signal) missing, so the SLOs cannot size the process"
    }
    if proposal.raisedToOne {
      text += "; above the activation threshold \(format(tracking?.activationThreshold ?? 0)), so 1"
    }
    return text
  }

  /// The conditions of a firing rule that hold, with their values, and how long they held.
  func firing(_ rule: ScaleRule?, at positions: ConditionPositions) -> String {
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

  func describe(_ clamp: Clamp) -> String {
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
    case .budgetShare: text = tree?.share.map(describe) ?? "a budget's cap"
    case .providerShare: text = tree?.providerShare.map(describe) ?? "a share of a provider's rate limit"
    case .frozenAbove:
      text =
        tree?.frozenBy.map {
          "budget '\($0.name)' is frozen at \(usd($0.spentUSD)) of \(usd($0.limitUSD)) until its next budget day"
        } ?? "a budget above it is frozen"
    }
    if let held = clamp.heldForDraining {
      text += "; held at \(held) because \(drainingHold(status.draining))"
    }
    return text
  }

  func describe(_ floor: PredictiveFloor) -> String {
    let signal = target.predictive?.signal ?? ""
    let today =
      floor.scale < 1 ? " × \(format((floor.scale * 1000).rounded() / 1000)) for today's level so far" : ""
    return
      "predictive floor \(floor.replicas): \(signal) forecast \(format(floor.forecast)) within \(DurationText.of(floor.lookahead))\(today) / \(format(floor.perReplica)) per replica"
  }

  func drainingHold(_ draining: Int) -> String {
    "\(target.maxSource.rawValue) \(target.max) counts the \(draining) replicas still draining"
  }

  func describe(_ block: Block, wanted: Int, driver: Proposal?) -> String {
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
    case .sloHold(let held):
      return "wanted \(wanted) by the SLOs, held at \(held.replicas): \(describe(held))"
    }
  }

  /// `budget 'org' caps GPUs at 8, divided by weight: acme 5 (weight 2 of 3); this process's
  /// share is 4 GPUs of the 10 it asks for`.
  func describe(_ share: BudgetShare) -> String {
    let unit = share.unit.rawValue
    let text = "budget '\(share.budget)' caps \(unit) at \(share.cap)" + division(share.parts, by: "weight")
    return text + "; this process's share is \(share.units) \(unit) of the \(share.asked) it asks for"
  }

  /// `provider 'llm' tokens_per_minute 100000 × safety margin 0.8, divided by
  /// rate_limit_weight: globex 20000 (weight 1 of 3); this process's share, 20000 at 10000 per
  /// replica, allows 2 replicas of the 7 it asks for`.
  func describe(_ share: ProviderShare) -> String {
    let text =
      "provider '\(share.provider)' \(share.what) \(format(share.limit)) × safety margin \(format(share.margin))"
      + division(share.parts, by: "rate_limit_weight")
    return text
      + "; this process's share, \(amount(share.units)) at \(format(share.perReplica)) per replica, allows \(share.replicas) replicas of the \(share.asked) it asks for"
  }

  /// `, divided by weight: acme 5 (weight 2 of 3), then acme-eu 3 (weight 1 of 2)`; nothing for
  /// a share that no sibling had to be given part of.
  func division(_ parts: [BudgetShare.Part], by key: String) -> String {
    guard !parts.isEmpty else { return "" }
    return ", divided by \(key): "
      + parts.map {
        "\($0.name) \(amount($0.units)) (weight \(format($0.weight)) of \(format($0.siblingsWeight)))"
      }.joined(separator: ", then ")
  }

  /// A share of tokens or requests per minute: whole where it is large, to two places where not.
  func amount(_ value: Double) -> String {
    value >= 100 ? format(value.rounded(.down)) : format((value * 100).rounded(.down) / 100)
  }
}
