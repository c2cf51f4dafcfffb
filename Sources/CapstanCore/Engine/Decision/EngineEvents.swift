import Foundation

/// The audit events the engine writes besides a decision's own (`TargetContext.event`), each
/// made in one place.
extension AuditEvent {
  /// The replicas are not what Capstan last saw or set.
  static func externalChange(
    of target: ScalingTarget, from expected: Int, to current: Int, signals: [(name: String, value: Double?)],
    at time: Date
  ) -> AuditEvent {
    AuditEvent(
      time: time, process: target.name, kind: .externalChange, from: expected, to: current,
      reason: .externalChange,
      detail:
        "replicas are \(current), not the \(expected) Capstan last saw or set: someone else changed them; deciding from \(current)",
      signals: signals, budget: nil, costPerHourUSD: target.costPerHourUSD.map { $0 * Double(current) })
  }

  /// A signal that target reads lost its value (`value` nil) or has one again. The record says
  /// what the outage does: a signal a proposal reads vetoes scale-downs; a budget's cost rate
  /// is carried forward; a predictive floor's signal only stops feeding its history.
  static func signalOutage(
    _ signal: String, value: Double?, of target: ScalingTarget, vetoes: Bool, replicas: Int,
    signals: [(name: String, value: Double?)], at time: Date
  ) -> AuditEvent {
    let missing = value == nil
    let effect =
      if vetoes {
        "\(target.name) will not scale down on it until it returns"
      } else if target.slo?.budgetSignalNames.contains(signal) == true {
        "the error budget of \(target.name) counts no requests until it returns"
      } else if target.budget?.costRateMetric == signal {
        "the budget of \(target.name) counts its last value until it returns"
      } else if target.variant?.learning?.signalNames.contains(signal) == true {
        // A variant at no replicas measures nothing: its silence, not an outage.
        replicas == 0
          ? "\(target.name) runs no replica to measure; its capacity learns nothing until one runs"
          : "the capacity \(target.name) learns holds until it returns"
      } else {
        "the predictive floor of \(target.name) learns nothing from it until it returns"
      }
    return AuditEvent(
      time: time, process: target.name, kind: missing ? .signalMissing : .signalRestored,
      from: replicas, to: replicas, reason: missing ? .signalMissing : .signalRestored,
      detail: value.map { "signal \(signal) has a value again: \(format($0))" }
        ?? "signal \(signal) has no value; \(effect)",
      signals: signals, budget: nil, costPerHourUSD: target.costPerHourUSD.map { $0 * Double(replicas) })
  }

  /// The predictive floor, or an SLO sizing's seasonal forecast, turned on, or off with a
  /// warning.
  static func forecast(
    _ condition: ForecastState.Condition, why: String, of target: ScalingTarget, replicas: Int,
    signals: [(name: String, value: Double?)], at time: Date
  ) -> AuditEvent {
    let on = condition == .active
    let detail =
      target.predictive?.feedsSLO == true
      ? (on
        ? "seasonal forecast on: \(why)" : "seasonal forecast off, sizing on the load's trend alone: \(why)")
      : (on ? "predictive floor on: \(why)" : "predictive floor off, scaling on the rules alone: \(why)")
    return AuditEvent(
      time: time, process: target.name, kind: on ? .predictiveFloor : .warning, from: replicas,
      to: replicas, reason: .predictiveFloor,
      detail: detail,
      signals: signals, budget: nil, costPerHourUSD: target.costPerHourUSD.map { $0 * Double(replicas) })
  }

  /// A budget's alert, freeze or new day.
  static func budget(
    _ event: BudgetLedger.Event, of target: ScalingTarget, breaker: CostCircuitBreaker, ledger: BudgetLedger,
    replicas: Int, signals: [(name: String, value: Double?)], at time: Date
  ) -> AuditEvent {
    let (kind, reason, detail, snapshot): (AuditEventKind, ScaleReason, String, BudgetSnapshot)
    switch event {
    case .alert(let spent, let limit), .freeze(let spent, let limit):
      let freezing = event.isFreeze
      let threshold =
        freezing
        ? "action threshold \(format(breaker.actionThreshold * 100))"
        : "alert threshold \(format(breaker.alertThreshold * 100))"
      (kind, reason, snapshot) = (
        freezing ? .budgetFreeze : .budgetAlert, .budgetThreshold,
        BudgetSnapshot(spentUSD: spent, limitUSD: limit, state: freezing ? .frozen : .alert)
      )
      detail =
        "spent \(usd(spent)) of the daily \(usd(limit)), past the \(threshold)%"
        + (freezing ? ": no scale-ups until the next budget day" : "")
    case .reset(let previous, let dayStart):
      (kind, reason) = (.budgetReset, .budgetDay)
      snapshot = BudgetSnapshot(
        spentUSD: ledger.spentUSD, limitUSD: breaker.dailyBudgetUSD, state: ledger.state)
      detail =
        "a new budget day began at \(RFC3339.string(from: dayStart)) (\(breaker.timeZone.identifier)); the day before spent \(usd(previous))"
    }
    return AuditEvent(
      time: time, process: target.name, kind: kind, from: replicas, to: replicas, reason: reason,
      detail: detail,
      signals: signals, budget: snapshot, costPerHourUSD: target.costPerHourUSD.map { $0 * Double(replicas) })
  }

  /// A `budgets:` budget's change of state, freeze or new day, as a `*` record.
  static func namedBudget(
    _ event: BudgetDayLedger.Event, budget: NamedBudget, ledger: BudgetDayLedger, at time: Date
  ) -> AuditEvent {
    let (kind, reason, detail): (AuditEventKind, ScaleReason, String)
    var snapshot = NamedBudgetSnapshot(
      name: budget.name, spentUSD: ledger.day?.spentUSD ?? 0, limitUSD: budget.dailyBudgetUSD,
      health: ledger.health, frozen: ledger.frozen)
    let limit = budget.dailyBudgetUSD.map { " of the daily \(usd($0))" } ?? ""
    switch event {
    case .health(let from, let to, let spent, _):
      (kind, reason) = (.budgetAlert, .budgetThreshold)
      snapshot.spentUSD = spent
      detail =
        "budget '\(budget.name)' went from \(from.rawValue) to \(to.rawValue): spent \(usd(spent))\(limit)"
    case .freeze(let spent, _):
      (kind, reason) = (.budgetFreeze, .budgetThreshold)
      snapshot.spentUSD = spent
      detail =
        "budget '\(budget.name)' spent \(usd(spent))\(limit), past the action threshold \(format(budget.actionThreshold * 100))%: no scale-ups of its processes, or those of the budgets below it, until the next budget day"
    case .reset(let previous):
      (kind, reason) = (.budgetReset, .budgetDay)
      detail =
        "budget '\(budget.name)': a new budget day began at \(RFC3339.string(from: previous.end)) (\(budget.timeZone.identifier)); the day before spent \(usd(previous.spentUSD))"
    }
    return AuditEvent(
      time: time, process: "*", kind: kind, from: nil, to: nil, reason: reason, detail: detail, signals: [],
      budget: nil, costPerHourUSD: nil, namedBudget: snapshot)
  }
}
