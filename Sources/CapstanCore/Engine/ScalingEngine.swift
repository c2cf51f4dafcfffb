import Foundation

/// The decision engine: `decide(inputs, state, now)` returns the actions to carry out and the
/// audit events, and the next state. Pure: no I/O, no clock, the same answer for the same
/// arguments. Replay and the live controller are drivers around this one function.
public struct ScalingEngine: Sendable {
  public let policy: Policy
  /// For each signal, the targets (by index) that read it, computed once rather than every tick.
  private let readers: [String: [Int]]
  /// For each signal, the processes with variants (by index) whose rules read it.
  private let groupReaders: [String: [Int]]
  /// Per target, in policy order, what every tick needs and the policy fixes.
  let prepared: [PreparedTarget]
  /// Every signal the policy names, in order: a tick looks each up once, by position after.
  private let signalNames: [String]
  /// The targets' order, which the saved state is arranged in so a tick reaches each by position.
  let order: TargetOrder
  /// Each signal's place in `signalOrder`.
  let signalPositions: [String: Int]
  /// The `budgets:` tree as a tick walks it.
  let budgets: PreparedBudgets
  /// The processes with variants, in the policy's order.
  let variantGroups: [PreparedVariantGroup]
  /// Per target, the index of the group it is a variant of; nil for any other target.
  let groupOfTarget: [Int?]

  // MARK: The input layout, which drivers ask for rather than work out

  /// The order `IndexedInputs.signals` holds values in: the policy's signals, then any other
  /// name a target reads.
  public var signalOrder: [String] { signalNames }

  /// Where signal `name` sits in `IndexedInputs.signals`; nil for a name no part of the policy
  /// reads.
  public func position(ofSignal name: String) -> Int? { signalPositions[name] }

  /// Where process `name` sits in `IndexedInputs.replicas`: its place in the policy.
  public func position(ofTarget name: String) -> Int? {
    // The order goes on past the targets with the processes that have variants, which take
    // no input of their own.
    order.position(of: name).flatMap { $0 < prepared.count ? $0 : nil }
  }

  /// Inputs in this engine's layout with every signal missing and no target decided, for a
  /// driver to fill in place each tick.
  public func emptyInputs() -> IndexedInputs {
    IndexedInputs(
      signals: Array(repeating: nil, count: signalNames.count),
      replicas: Array(repeating: nil, count: prepared.count))
  }

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
    var groupReaders: [String: [Int]] = [:]
    for (index, group) in policy.variantGroups.enumerated() {
      for name in group.process.signalNames {
        groupReaders[name, default: []].append(index)
        if known.insert(name).inserted { names.append(name) }
      }
    }
    self.readers = readers
    self.groupReaders = groupReaders
    signalNames = names
    let positions = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    signalPositions = positions
    // A group's own state (its windows and timers, on its capacity) follows the targets'.
    order = TargetOrder(policy.targets.map(\.name) + policy.variantGroups.map(\.process.name))
    let sharing = TargetsSharing(policy)
    prepared = policy.targets.map { PreparedTarget($0, in: policy, positions: positions, sharing: sharing) }
    budgets = PreparedBudgets(policy)
    let groups = policy.variantGroups.enumerated().map { position, group in
      PreparedVariantGroup(
        group, slot: policy.targets.count + position, in: policy, positions: positions, sharing: sharing)
    }
    variantGroups = groups
    var groupOfTarget = [Int?](repeating: nil, count: policy.targets.count)
    for (position, group) in groups.enumerated() {
      for member in group.members { groupOfTarget[member] = position }
    }
    self.groupOfTarget = groupOfTarget
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
    var bindings: [TreeBinding] = []
    if !budgets.isEmpty {
      bindings = advanceBudgetTree(
        signals, replicas: replicas, state: &state, now: now, into: &decision.events)
      if budgets.tree.hasCaps || !budgets.dividedProviders.isEmpty {
        divideShares(signals, replicas: replicas, state: state, now: now, bindings: &bindings)
      }
    }

    for (index, prepared) in self.prepared.enumerated() {
      if let position = groupOfTarget[index] {
        // A variant is decided with its siblings, by its process's capacity.
        let group = variantGroups[position]
        if index == group.firstMember {
          decideVariants(
            group, signals: signals, replicas: replicas, state: &state, now: now, bindings: bindings,
            into: &decision)
        }
        continue
      }
      guard let status = replicas[index] else { continue }
      let (floor, seasonal) = advanceForecast(
        prepared, status: status, signals: signals, state: &state, now: now, into: &decision)
      let budget = advanceBudget(
        ofTarget: index, prepared, status: status, signals: signals, state: &state, now: now, into: &decision)
      let context = TargetContext(
        prepared: prepared, status: status, signals: signals, now: now, budget: budget,
        others: prepared.peers.isEmpty
          ? SharedUsage()
          : sharedUsage(of: prepared.peers, replicas, decision.actions),
        floor: floor, floorReplicas: floor?.replicas, seasonal: seasonal,
        tree: bindings.isEmpty || (budgets.chains[index].isEmpty && !budgets.divided[index])
          ? nil : bindings[index]
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
          .signalOutage(
            signal.name, value: signals[position], of: target,
            vetoes: prepared.proposalSignals.contains { $0.name == signal.name }, replicas: status.current,
            signals: signals.values(of: prepared), at: now))
      }
      for groupIndex in groupReaders[signal.name] ?? [] {
        let group = variantGroups[groupIndex]
        let statuses = group.members.compactMap { replicas[$0] }
        guard statuses.count == group.members.count else { continue }
        let capacities = capacitiesInUse(group, in: state)
        events.append(
          .signalOutage(
            signal.name, value: signals[position], of: group.group.process,
            vetoes: group.prepared.proposalSignals.contains { $0.name == signal.name },
            replicas: VariantFill.capacityStatus(statuses, capacities).current,
            signals: signals.values(of: group.prepared), at: now))
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

  /// Step 1, the budget: spend accrues since the last tick, in place in the saved state at the
  /// target's position, and crossing a threshold or a budget day writes its record. Nil where
  /// the target has no budget.
  private func advanceBudget(
    ofTarget index: Int, _ prepared: PreparedTarget, status: ReplicaStatus, signals: SignalTable,
    state: inout EngineState, now: Date, into decision: inout TickDecision
  ) -> BudgetSnapshot? {
    // A stored flag first, so a target without a budget does not copy its optional settings.
    // The breaker is read where the policy holds it rather than bound to a local, whose copy
    // (a time zone and a metric name) takes reference counts every tick.
    guard prepared.hasBudget else { return nil }
    let (events, current) = state.budgets.update(atTarget: index, default: BudgetLedger()) { ledger in
      let events =
        prepared.target.budget.map {
          ledger.advance(
            to: now, replicas: status.current, costPerHourUSD: prepared.target.costPerHourUSD,
            costRate: prepared.costRatePosition.flatMap { signals[$0] }, breaker: $0)
        } ?? []
      return (events, ledger)
    }
    if !events.isEmpty, let breaker = prepared.target.budget {
      for event in events {
        decision.events.append(
          .budget(
            event, of: prepared.target, breaker: breaker, ledger: current, replicas: status.current,
            signals: signals.values(of: prepared), at: now))
      }
    }
    return BudgetSnapshot(
      spentUSD: current.spentUSD, limitUSD: prepared.target.budget?.dailyBudgetUSD ?? 0, state: current.state)
  }

  /// The predictive floor at this tick, learned from the forecast signal, or for an SLO-sized
  /// target the load its profile expects; nil where the target has none or it is off. Turning
  /// on or off writes its record.
  func advanceForecast(
    _ prepared: PreparedTarget, status: ReplicaStatus, signals: SignalTable, state: inout EngineState,
    now: Date,
    into decision: inout TickDecision
  ) -> (floor: PredictiveFloor?, seasonal: SeasonalLoad?) {
    guard prepared.isPredictive, let predictive = prepared.target.predictive else { return (nil, nil) }
    let value = prepared.predictivePosition.flatMap { signals[$0] }
    var floor: PredictiveFloor?
    var seasonal: SeasonalLoad?
    let change: (ForecastState.Condition, String)?
    if predictive.feedsSLO {
      (seasonal, change) = state.forecasts[prepared.target.name, default: ForecastState()].advanceLoad(
        value: value, now: now, settings: predictive)
    } else {
      (floor, change) = state.forecasts[prepared.target.name, default: ForecastState()].advance(
        value: value, now: now, settings: predictive, min: prepared.target.min, max: prepared.target.max)
    }
    if let (condition, why) = change {
      decision.events.append(
        .forecast(
          condition, why: why, of: prepared.target, replicas: status.current,
          signals: signals.values(of: prepared), at: now))
    }
    return (floor, seasonal)
  }

  /// What the peers on a target's provider or GPU pool hold: a peer decided this tick counts
  /// at the larger of its old and new size (removed replicas are still draining), the rest as
  /// they are, draining replicas included.
  func sharedUsage(
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
