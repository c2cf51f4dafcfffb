import Foundation

// Autoscaling policies: scale_up and scale_down rules, constraints, the cost circuit breaker.
extension PolicyValidator {
  // MARK: Autoscaling policies

  func applyPolicy(
    _ name: RawScalar, _ raw: RawAutoscalingPolicy, to target: inout ScalingTarget,
    references: inout SignalReferences
  ) {
    target.policyName = name.text
    if let up = raw.scaleUp {
      target.up.rule = validateRule(up, direction: .up, target: &target, references: &references)
    }
    if let down = raw.scaleDown {
      target.down.rule = validateRule(down, direction: .down, target: &target, references: &references)
    }
    if let breaker = raw.costCircuitBreaker {
      target.budget = validateBreaker(breaker, target: target, references: &references)
    }
    if raw.scaleUp == nil && raw.scaleDown == nil && raw.costCircuitBreaker == nil {
      sink.warning(
        name.location,
        "policy '\(name.text)' has no scale_up, scale_down or cost_circuit_breaker: it changes nothing")
    }
  }

  func validateRule(
    _ raw: RawRule, direction: ScaleDirection, target: inout ScalingTarget, references: inout SignalReferences
  ) -> ScaleRule? {
    let section = direction == .up ? "scale_up" : "scale_down"
    var conditions: [Condition] = []
    var holdFor: TimeInterval = 0
    var durationSeen = false
    for item in raw.conditions ?? [] {
      if let rawDuration = item.duration {
        if durationSeen {
          sink.error(rawDuration.location, "\(section) has a second duration item: give one")
        }
        durationSeen = true
        holdFor = duration(rawDuration) ?? 0
      }
      if let rawMetric = item.metric, let condition = parseCondition(rawMetric) {
        conditions.append(condition)
        references.note(
          RawScalar(text: condition.metric, location: rawMetric.location), perReplicaOf: nil,
          usedBy: target.name)
      }
      if item.metric == nil && item.duration == nil {
        sink.error(
          FileLocation(file: file, line: 1, column: 1),
          "an empty condition item in \(section): write '- metric: NAME > VALUE' or '- duration: 10m'"
        )
      }
    }
    var match: ScaleRule.Match = direction == .up ? .any : .all
    if let rawMatch = raw.match {
      if let value = ScaleRule.Match(rawValue: rawMatch.text) {
        match = value
      } else {
        sink.error(rawMatch.location, "match is '\(rawMatch.text)': use any or all")
      }
    }
    for constraint in raw.constraints ?? [] { applyConstraint(constraint, to: &target) }
    var rules = target.rules(direction)
    if let window = raw.stabilizationWindow, let value = duration(window) { rules.stabilization = value }
    if let action = raw.action {
      // The same shape both ways: a step, a cooldown; each key in its own direction only.
      let (step, stepKey, misplacedStep, otherSection) =
        direction == .up
        ? (action.addInstances, "add_instances", action.removeInstances, "scale_down")
        : (action.removeInstances, "remove_instances", action.addInstances, "scale_up")
      if let step, let value = count(step, "instances") {
        if value == 0 {
          let verb = direction == .up ? "adds" : "removes"
          sink.error(step.location, "\(stepKey) is 0: a \(direction.rawValue) \(verb) at least 1")
        } else {
          rules.step = value
        }
      }
      if let cooldown = action.cooldown { rules.cooldown = duration(cooldown) ?? 0 }
      if let misplacedStep {
        let key = direction == .up ? "remove_instances" : "add_instances"
        sink.error(misplacedStep.location, "\(key) belongs in \(otherSection).action, not \(section).action")
      }
      if let drain = action.drainTimeout {
        if direction == .down {
          target.drainTimeout = duration(drain) ?? PolicyDefaults.drainTimeout
        } else {
          sink.error(
            drain.location,
            "drain_timeout belongs in scale_down.action: it is how long a removed replica may take to finish")
        }
      }
    }
    if direction == .up { target.up = rules } else { target.down = rules }
    guard !conditions.isEmpty else {
      if durationSeen {
        sink.error(
          FileLocation(file: file, line: 1, column: 1),
          "\(section) has a duration but no metric conditions")
      }
      return nil
    }
    return ScaleRule(conditions: conditions, match: match, duration: holdFor)
  }

  func applyConstraint(_ raw: RawConstraint, to target: inout ScalingTarget) {
    if let rawMax = raw.maxInstances, let value = count(rawMax, "instances") {
      if value == 0 {
        sink.error(rawMax.location, "max_instances is 0: allow at least one replica")
      } else if target.max != Int.max && value > target.max {
        sink.warning(
          rawMax.location,
          "max_instances \(value) has no effect: process '\(target.name)' has max \(target.max)")
      } else {
        target.max = value
        target.maxSource = .constraint
      }
      if value < target.min {
        sink.error(
          rawMax.location, "max_instances \(value) is below the minimum \(target.min) of '\(target.name)'")
      }
    }
    if let rawMin = raw.minInstances, let value = count(rawMin, "instances") {
      if value == 0 && target.workloadClass == .interactive {
        sink.error(
          rawMin.location, "min_instances is 0 but '\(target.name)' is interactive, which never goes below 1")
      } else if value == 0 && target.tracking?.kind == .utilization {
        sink.error(
          rawMin.location,
          "min_instances is 0 but '\(target.name)' tracks a utilization, which does not exist at zero replicas: it would never come back; scale to zero on a total such as queue depth (a plain-number target)"
        )
      } else if target.max != Int.max && value > target.max {
        sink.error(
          rawMin.location, "min_instances \(value) is above the maximum \(target.max) of '\(target.name)'")
      } else {
        target.min = value
      }
    }
    if let rawCost = raw.maxCostPerHourUSD, let value = positive(rawCost, "USD per hour") {
      target.maxCostPerHourUSD = min(value, target.maxCostPerHourUSD ?? .infinity)
      if target.costPerHourUSD == nil {
        sink.warning(
          rawCost.location,
          "max_cost_per_hour_usd cannot bind: '\(target.name)' has no cost_per_hour_usd to multiply replicas by"
        )
      }
    }
  }

  func validateBreaker(
    _ raw: RawCostCircuitBreaker, target: ScalingTarget, references: inout SignalReferences
  ) -> CostCircuitBreaker? {
    guard let rawBudget = raw.dailyBudgetUSD else {
      sink.error(
        raw.action?.location ?? raw.alertThreshold?.location ?? FileLocation(file: file, line: 1, column: 1),
        "cost_circuit_breaker needs daily_budget_usd")
      return nil
    }
    guard let budget = positive(rawBudget, "USD") else { return nil }
    let alert =
      raw.alertThreshold.flatMap { fraction($0, "alert_threshold") } ?? PolicyDefaults.alertThreshold
    let action =
      raw.actionThreshold.flatMap { fraction($0, "action_threshold") } ?? PolicyDefaults.actionThreshold
    if alert > action, let location = raw.alertThreshold?.location ?? raw.actionThreshold?.location {
      sink.error(
        location,
        "alert_threshold (\(alert)) is above action_threshold (\(action)): the alert must come first")
    }
    if let rawAction = raw.action, rawAction.text != "freeze_scaling" {
      sink.error(
        rawAction.location,
        "cost_circuit_breaker action is '\(rawAction.text)': the one action is freeze_scaling (no scale-ups until the next budget day)"
      )
    }
    let timeZone = raw.timezone.flatMap(timeZone) ?? .gmt
    if let metric = raw.costRateMetric { references.note(metric, perReplicaOf: nil, usedBy: target.name) }
    if raw.costRateMetric == nil && target.costPerHourUSD == nil {
      sink.warning(
        rawBudget.location,
        "the budget of '\(target.name)' has nothing to count: set cost_per_hour_usd on the process or cost_rate_metric here"
      )
    }
    return CostCircuitBreaker(
      dailyBudgetUSD: budget, alertThreshold: alert, actionThreshold: action,
      costRateMetric: raw.costRateMetric?.text, timeZone: timeZone)
  }

  func parseCondition(_ raw: RawScalar) -> Condition? {
    guard let match = raw.text.wholeMatch(of: Self.conditionPattern),
      let op = ComparisonOperator(rawValue: String(match.2))
    else {
      sink.error(
        raw.location,
        "condition '\(raw.text)' is not of the form 'METRIC OP NUMBER[UNIT]' with OP one of > >= < <= == != (for example 'queue_depth > 50' or 'p95_latency > 5s')"
      )
      return nil
    }
    let thresholdText = String(match.3)
    switch Quantity.threshold(thresholdText) {
    case .success(let threshold):
      return Condition(
        metric: String(match.1), op: op, threshold: threshold,
        text: raw.text)
    case .failure(let failure):
      var location = raw.location
      if let range = raw.text.range(of: thresholdText, options: .backwards) {
        location.column += raw.text.distance(from: raw.text.startIndex, to: range.lowerBound)
      }
      sink.error(location, failure.message)
      return nil
    }
  }

}
