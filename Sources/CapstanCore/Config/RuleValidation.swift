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
      target.scaleUp = validateRule(up, direction: .up, target: &target, references: &references)
    }
    if let down = raw.scaleDown {
      target.scaleDown = validateRule(down, direction: .down, target: &target, references: &references)
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

  enum Direction: String {
    case up = "scale_up"
    case down = "scale_down"
  }

  func validateRule(
    _ raw: RawRule, direction: Direction, target: inout ScalingTarget, references: inout SignalReferences
  ) -> ScaleRule? {
    var conditions: [Condition] = []
    var holdFor: TimeInterval = 0
    var durationSeen = false
    for item in raw.conditions ?? [] {
      if let rawDuration = item.duration {
        if durationSeen {
          sink.error(rawDuration.location, "\(direction.rawValue) has a second duration item: give one")
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
          "an empty condition item in \(direction.rawValue): write '- metric: NAME > VALUE' or '- duration: 10m'"
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
    if let window = raw.stabilizationWindow, let value = duration(window) {
      switch direction {
      case .up: target.scaleUpStabilization = value
      case .down: target.scaleDownStabilization = value
      }
    }
    var step = 1
    if let action = raw.action {
      switch direction {
      case .up:
        if let add = action.addInstances, let value = count(add, "instances") {
          if value == 0 {
            sink.error(add.location, "add_instances is 0: a scale-up adds at least 1")
          } else {
            step = value
          }
          target.scaleUpStep = value
        }
        if let cooldown = action.cooldown { target.scaleUpCooldown = duration(cooldown) ?? 0 }
        if let misplaced = action.removeInstances {
          sink.error(misplaced.location, "remove_instances belongs in scale_down.action, not scale_up.action")
        }
        if let misplaced = action.drainTimeout {
          sink.error(
            misplaced.location,
            "drain_timeout belongs in scale_down.action: it is how long a removed replica may take to finish")
        }
      case .down:
        if let remove = action.removeInstances, let value = count(remove, "instances") {
          if value == 0 {
            sink.error(remove.location, "remove_instances is 0: a scale-down removes at least 1")
          } else {
            step = value
          }
          target.scaleDownStep = value
        }
        if let cooldown = action.cooldown { target.scaleDownCooldown = duration(cooldown) ?? 0 }
        if let drain = action.drainTimeout {
          target.drainTimeout = duration(drain) ?? PolicyDefaults.drainTimeout
        }
        if let misplaced = action.addInstances {
          sink.error(misplaced.location, "add_instances belongs in scale_up.action, not scale_down.action")
        }
      }
    }
    guard !conditions.isEmpty else {
      if durationSeen {
        sink.error(
          FileLocation(file: file, line: 1, column: 1),
          "\(direction.rawValue) has a duration but no metric conditions")
      }
      return nil
    }
    return ScaleRule(conditions: conditions, match: match, duration: holdFor, step: step)
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
        target.maxSource = "max_instances"
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
    var timeZone = TimeZone.gmt
    if let rawZone = raw.timezone {
      if let zone = TimeZone(identifier: rawZone.text) {
        timeZone = zone
      } else {
        sink.error(
          rawZone.location,
          "timezone '\(rawZone.text)' is unknown: use an IANA name such as UTC, Europe/Berlin or America/New_York"
        )
      }
    }
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
