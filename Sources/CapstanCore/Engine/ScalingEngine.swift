import Foundation

/// The decision engine: `decide(inputs, state, now)` returns the actions to carry out and the
/// audit events, and the next state. Pure: no I/O, no clock, the same answer for the same
/// arguments. Replay and the live controller are drivers around this one function.
public struct ScalingEngine: Sendable {
  public let policy: Policy
  /// For each signal, the targets (by index) that read it, computed once rather than every tick.
  private let readers: [String: [Int]]
  /// Per target, in policy order, what every tick needs and the policy fixes.
  private let prepared: [PreparedTarget]
  /// Every signal the policy names, in order: a tick looks each up once, by position after.
  private let signalNames: [String]
  /// The targets' order, which the saved state is arranged in so a tick reaches each by position.
  private let order: TargetOrder

  /// The order `IndexedInputs.signals` holds values in: the policy's signals, then any other
  /// name a target reads.
  public var signalOrder: [String] { signalNames }

  public init(policy: Policy) {
    self.policy = policy
    var readers: [String: [Int]] = [:]
    var names = policy.signals.map(\.name)
    var known = Set(names)
    for (index, target) in policy.targets.enumerated() {
      for name in target.signalNames {
        readers[name, default: []].append(index)
        if known.insert(name).inserted { names.append(name) }
      }
    }
    self.readers = readers
    signalNames = names
    let positions = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    order = TargetOrder(policy.targets.map(\.name))
    let sharing = TargetsSharing(policy)
    prepared = policy.targets.map { PreparedTarget($0, in: policy, positions: positions, sharing: sharing) }
  }

  /// - Parameter state: consumed and returned as the next state; pass `consume state` from a
  ///   loop so the engine updates it in place instead of copying it every tick.
  public func decide(_ inputs: EngineInputs, state: consuming EngineState, now: Date) -> (
    TickDecision, EngineState
  ) {
    var state = consume state
    // On the stack for a policy's usual handful of signals and targets: a steady tick allocates
    // nothing. Each name is looked up once here, and by position from then on.
    let decision = withUnsafeTemporaryAllocation(of: Double?.self, capacity: signalNames.count) { values in
      for (position, name) in signalNames.enumerated() {
        values.initializeElement(at: position, to: inputs.signals[name])
      }
      return withUnsafeTemporaryAllocation(of: ReplicaStatus?.self, capacity: prepared.count) { replicas in
        for (index, target) in prepared.enumerated() {
          replicas.initializeElement(at: index, to: inputs.replicas[target.target.name])
        }
        return decide(
          SignalTable(values: UnsafeBufferPointer(values)),
          replicas: UnsafeBufferPointer(replicas), state: &state, now: now)
      }
    }
    return (decision, state)
  }

  /// The same decision from inputs kept by position (`signalOrder`, the policy's targets).
  /// - Precondition: `inputs` holds one value a signal and one status a target.
  public func decide(_ inputs: IndexedInputs, state: consuming EngineState, now: Date) -> (
    TickDecision, EngineState
  ) {
    precondition(
      inputs.signals.count == signalNames.count && inputs.replicas.count == prepared.count,
      "IndexedInputs holds \(inputs.signals.count) signals and \(inputs.replicas.count) targets, not \(signalNames.count) and \(prepared.count)"
    )
    var state = consume state
    let decision = inputs.signals.withUnsafeBufferPointer { values in
      inputs.replicas.withUnsafeBufferPointer { replicas in
        decide(
          SignalTable(values: values), replicas: replicas, state: &state, now: now
        )
      }
    }
    return (decision, state)
  }

  private func decide(
    _ signals: SignalTable, replicas: UnsafeBufferPointer<ReplicaStatus?>, state: inout EngineState, now: Date
  ) -> TickDecision {
    var decision = TickDecision()
    // Once per engine: the saved state's targets and budgets in this policy's order.
    state.targets.arrange(order)
    state.budgets.arrange(order)
    signalOutageEvents(signals, replicas: replicas, state: &state, now: now, into: &decision.events)

    for (index, prepared) in self.prepared.enumerated() {
      guard let status = replicas[index] else { continue }
      var floor: PredictiveFloor?
      var floorReplicas: Int?
      // A stored flag first: reading the optional settings copied them on every tick, set or not.
      if prepared.isPredictive, let predictive = prepared.target.predictive {
        let (found, change) = state.forecasts[prepared.target.name, default: ForecastState()].advance(
          value: prepared.predictivePosition.flatMap { signals[$0] }, now: now, settings: predictive,
          min: prepared.target.min,
          max: prepared.target.max)
        floor = found
        floorReplicas = found?.replicas
        if let (condition, why) = change {
          decision.events.append(
            forecastEvent(
              condition, why: why, prepared: prepared, status: status, signals: signals, now: now))
        }
      }
      var budget: BudgetSnapshot?
      if prepared.hasBudget {
        // Advanced in place in the saved state, at the target's position: no copy, no lookup.
        // The breaker is read where the policy holds it, not bound to a local: a copy of it
        // (its time zone and metric name) was four reference counts a tick.
        let (events, current) = state.budgets.update(atTarget: index, default: BudgetLedger()) { ledger in
          let events =
            prepared.target.budget.map {
              ledger.advance(
                to: now, replicas: status.current, costPerHourUSD: prepared.target.costPerHourUSD,
                costRate: prepared.costRatePosition.flatMap { signals[$0] }, breaker: $0)
            } ?? []
          return (events, ledger)
        }
        budget = BudgetSnapshot(
          spentUSD: current.spentUSD, limitUSD: prepared.target.budget?.dailyBudgetUSD ?? 0,
          state: current.state)
        if !events.isEmpty, let breaker = prepared.target.budget {
          decision.events += events.map {
            budgetEvent(
              $0, prepared: prepared, breaker: breaker, ledger: current, status: status,
              signals: signals,
              now: now)
          }
        }
      }
      let context = TargetContext(
        prepared: prepared, status: status, signals: signals, now: now, budget: budget,
        others: prepared.peers.isEmpty
          ? SharedUsage()
          : sharedUsage(of: prepared.peers, replicas, decision.actions),
        floor: floor, floorReplicas: floorReplicas
      )
      // Decided in place at the target's position in the saved state, so its windows are not
      // copied every tick and its name is not hashed.
      state.targets.update(atTarget: index, default: TargetState()) { context.decide(&$0, into: &decision) }
    }
    state.lastTick = now
    return decision
  }

  private func signalOutageEvents(
    _ signals: SignalTable, replicas: UnsafeBufferPointer<ReplicaStatus?>, state: inout EngineState,
    now: Date,
    into events: inout [AuditEvent]
  ) {
    // The policy's signals come first in the table, in the policy's order.
    for position in policy.signals.indices {
      let name = signalNames[position]
      let missing = signals[position] == nil
      // With every signal present and none missing before, nothing to look up.
      if !missing && state.missingSignals.isEmpty { continue }
      guard missing != state.missingSignals.contains(name) else { continue }
      if missing {
        state.missingSignals.insert(name)
      } else {
        state.missingSignals.remove(name)
      }
      let signal = policy.signals[position]
      for index in readers[signal.name] ?? [] {
        let target = policy.targets[index]
        let prepared = self.prepared[index]
        guard let status = replicas[index] else { continue }
        events.append(
          AuditEvent(
            time: now, process: target.name, kind: missing ? .signalMissing : .signalRestored,
            from: status.current,
            to: status.current, reason: missing ? .signalMissing : .signalRestored,
            detail: signals[position].map {
              "signal \(signal.name) has a value again: \(format($0))"
            }
              ?? "signal \(signal.name) has no value; \(target.name) will not scale down on it until it returns",
            signals: signals.values(of: prepared), budget: nil,
            costPerHourUSD: target.costPerHourUSD.map { $0 * Double(status.current) }))
      }
    }
  }

  /// The budget ledger of the policy's target `index` in a state this engine decided, found by
  /// position rather than by name: for drivers that read it every tick (replay's summary). In a
  /// state it has not arranged, found by name.
  /// - Precondition: `index` is one of `policy.targets`' indices.
  public func budget(ofTarget index: Int, in state: EngineState) -> BudgetLedger? {
    state.budgets.value(atTarget: index, of: order)
  }

  /// Folds recorded history (a file, a Prometheus range) into a predictive target's, as if it
  /// had been seen at its times. Values at or after `before` are left out, so a replay that
  /// reads its own recording as history never sees its future.
  public func learn(
    _ samples: some Sequence<(time: Date, value: Double)>, for name: String, before: Date,
    state: inout EngineState
  ) {
    guard let settings = policy.target(named: name)?.predictive else { return }
    state.forecasts[name, default: ForecastState()].learn(samples, before: before, settings: settings)
  }

  private func forecastEvent(
    _ condition: ForecastState.Condition, why: String, prepared: PreparedTarget, status: ReplicaStatus,
    signals: SignalTable, now: Date
  ) -> AuditEvent {
    let target = prepared.target
    let on = condition == .active
    return AuditEvent(
      time: now, process: target.name, kind: on ? .predictiveFloor : .warning, from: status.current,
      to: status.current, reason: .predictiveFloor,
      detail: on ? "predictive floor on: \(why)" : "predictive floor off, scaling on the rules alone: \(why)",
      signals: signals.values(of: prepared), budget: nil,
      costPerHourUSD: target.costPerHourUSD.map { $0 * Double(status.current) })
  }

  private func budgetEvent(
    _ event: BudgetLedger.Event, prepared: PreparedTarget, breaker: CostCircuitBreaker, ledger: BudgetLedger,
    status: ReplicaStatus, signals: SignalTable, now: Date
  ) -> AuditEvent {
    let target = prepared.target
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
    let current = status.current
    return AuditEvent(
      time: now, process: target.name, kind: kind, from: current, to: current, reason: reason, detail: detail,
      signals: signals.values(of: prepared), budget: snapshot,
      costPerHourUSD: target.costPerHourUSD.map { $0 * Double(current) })
  }

  /// What the peers on a target's provider or GPU pool hold: a peer decided this tick counts
  /// at the larger of its old and new size (removed replicas are still draining), the rest as
  /// they are, draining replicas included.
  private func sharedUsage(
    of peers: [PeerShare], _ replicas: UnsafeBufferPointer<ReplicaStatus?>, _ decided: [ScaleAction]
  ) -> SharedUsage {
    var usage = SharedUsage()
    for peer in peers {
      let status = replicas[peer.index]
      var committed = (status?.current ?? 0) + (status?.draining ?? 0)
      if let action = decided.last(where: { $0.process == peer.name }) {
        committed = max(action.from, action.to) + (status?.draining ?? 0)
      }
      // A peer on another provider or pool adds 0 there.
      let count = Double(committed)
      usage.tokensPerMinute += count * peer.tokensPerMinute
      usage.requestsPerMinute += count * peer.requestsPerMinute
      usage.concurrentRequests += count * peer.concurrentRequests
      usage.gpus += committed * peer.gpus
    }
    return usage
  }
}

func format(_ value: Double) -> String { Ceilings.format(value) }

func usd(_ value: Double) -> String { Ceilings.printf("$%.2f", value) }
