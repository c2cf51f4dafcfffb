import Foundation

/// The decision engine: `decide(inputs, state, now)` returns the actions to carry out and the
/// audit events, and the next state. Pure: no I/O, no clock, the same answer for the same
/// arguments. Replay and the live controller are drivers around this one function.
public struct ScalingEngine: Sendable {
  public let policy: Policy
  /// For each signal, the targets that read it, computed once rather than every tick.
  private let readers: [String: [ScalingTarget]]

  public init(policy: Policy) {
    self.policy = policy
    var readers: [String: [ScalingTarget]] = [:]
    for target in policy.targets {
      for name in target.signalNames { readers[name, default: []].append(target) }
    }
    self.readers = readers
  }

  public func decide(_ inputs: EngineInputs, state: EngineState, now: Date) -> (TickDecision, EngineState) {
    var state = state
    var decision = TickDecision()
    decision.events += signalOutageEvents(inputs, state: &state, now: now)

    // What each target holds of shared providers and GPU pools: decided targets count at the
    // larger of their old and new size (removed replicas are still draining), the rest as they are.
    var committed: [String: Int] = [:]
    for target in policy.targets {
      let status = inputs.replicas[target.name]
      committed[target.name] = (status?.current ?? 0) + (status?.draining ?? 0)
    }

    for target in policy.targets {
      guard let status = inputs.replicas[target.name] else { continue }
      // Taken out of the dictionary so that mutating it does not copy its arrays.
      var targetState = state.targets.removeValue(forKey: target.name) ?? TargetState()
      var ledger = state.budgets[target.name]
      if let breaker = target.budget {
        var current = ledger ?? BudgetLedger()
        let events = current.advance(
          to: now, replicas: status.current, costPerHourUSD: target.costPerHourUSD,
          costRate: breaker.costRateMetric.flatMap { inputs.signals[$0] }, breaker: breaker)
        ledger = current
        decision.events += events.map {
          budgetEvent($0, target: target, breaker: breaker, ledger: current, inputs: inputs, now: now)
        }
      }
      let context = TargetContext(
        target: target, status: status, signals: inputs.signals, now: now, ledger: ledger,
        others: sharedUsage(excluding: target.name, committed: committed),
        provider: target.rateLimit.flatMap { policy.provider(named: $0.provider) },
        pool: target.resources.gpuPool.flatMap { policy.gpuPool(named: $0) })
      let outcome = context.decide(&targetState)
      if let action = outcome.action {
        decision.actions.append(action)
        committed[target.name] = max(action.from, action.to) + status.draining
      }
      decision.events += outcome.events
      state.targets[target.name] = targetState
      if let ledger { state.budgets[target.name] = ledger }
    }
    state.lastTick = now
    return (decision, state)
  }

  private func signalOutageEvents(_ inputs: EngineInputs, state: inout EngineState, now: Date) -> [AuditEvent]
  {
    var events: [AuditEvent] = []
    for signal in policy.signals {
      let missing = inputs.signals[signal.name] == nil
      guard missing != state.missingSignals.contains(signal.name) else { continue }
      if missing {
        state.missingSignals.insert(signal.name)
      } else {
        state.missingSignals.remove(signal.name)
      }
      for target in readers[signal.name] ?? [] {
        guard let status = inputs.replicas[target.name] else { continue }
        events.append(
          AuditEvent(
            time: now, process: target.name, kind: missing ? .signalMissing : .signalRestored,
            from: status.current,
            to: status.current, reason: missing ? .signalMissing : .signalRestored,
            detail: inputs.signals[signal.name].map {
              "signal \(signal.name) has a value again: \(format($0))"
            }
              ?? "signal \(signal.name) has no value; \(target.name) will not scale down on it until it returns",
            signals: signalValues(target, inputs.signals), budget: nil,
            costPerHourUSD: target.costPerHourUSD.map { $0 * Double(status.current) }))
      }
    }
    return events
  }

  private func budgetEvent(
    _ event: BudgetLedger.Event, target: ScalingTarget, breaker: CostCircuitBreaker, ledger: BudgetLedger,
    inputs: EngineInputs, now: Date
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
    let current = inputs.replicas[target.name]?.current
    return AuditEvent(
      time: now, process: target.name, kind: kind, from: current, to: current, reason: reason, detail: detail,
      signals: signalValues(target, inputs.signals), budget: snapshot,
      costPerHourUSD: target.costPerHourUSD.map { $0 * Double(current ?? 0) })
  }

  private func sharedUsage(excluding name: String, committed: [String: Int]) -> SharedUsage {
    var usage = SharedUsage()
    guard let me = policy.target(named: name) else { return usage }
    for other in policy.targets where other.name != name {
      let replicas = Double(committed[other.name] ?? 0)
      if let share = other.rateLimit, share.provider == me.rateLimit?.provider {
        usage.tokensPerMinute += replicas * (share.tokensPerMinutePerReplica ?? 0)
        usage.requestsPerMinute += replicas * (share.requestsPerMinutePerReplica ?? 0)
        usage.concurrentRequests += replicas * (share.concurrentRequestsPerReplica ?? 0)
      }
      if let pool = other.resources.gpuPool, pool == me.resources.gpuPool {
        usage.gpus += (committed[other.name] ?? 0) * other.resources.gpus
      }
    }
    return usage
  }
}

func signalValues(_ target: ScalingTarget, _ signals: [String: Double]) -> [(name: String, value: Double?)] {
  target.signalNames.map { ($0, signals[$0]) }
}

func format(_ value: Double) -> String { Ceilings.format(value) }

func usd(_ value: Double) -> String { String(format: "$%.2f", value) }
