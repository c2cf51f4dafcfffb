import Foundation

/// A process with variants as a tick decides it, worked out once from the policy.
final class PreparedVariantGroup: Sendable {
  let group: VariantGroup
  /// The process's own rules, decided as any target's are, on its capacity.
  let prepared: PreparedTarget
  /// Its variants' target indexes, in fill order.
  let members: [Int]
  /// Where its state is kept in `EngineState.targets`: after the policy's targets.
  let slot: Int
  /// The variant decided first in the policy's order: the group is decided there, so the
  /// targets after it see its actions as any later target sees an earlier one's.
  let firstMember: Int
  /// Per member, where it learns its capacity, its signals' places.
  let learning: [VariantLearningPositions?]
  /// Where variants learn, the unit variant's place in `members`.
  let unit: Int?

  init(_ group: VariantGroup, slot: Int, in policy: Policy, positions: [String: Int], sharing: TargetsSharing)
  {
    self.group = group
    prepared = PreparedTarget(
      group.process, in: policy, positions: positions, sharing: sharing, unit: "unit of capacity")
    let members = group.fillOrder.compactMap { name in policy.targets.firstIndex { $0.name == name } }
    self.members = members
    self.slot = slot
    firstMember = members.min() ?? 0
    learning = members.map { member in
      policy.targets[member].variant?.learning.map { VariantLearningPositions($0, positions: positions) }
    }
    unit = group.unit.flatMap { unit in members.firstIndex { policy.targets[$0].name == unit } }
  }

  /// Positions in `members` in the order a tick fills them: `prefer:`'s first, then the rest
  /// by dollars per unit of `capacities`, cheapest first (the policy's fill order on a tie).
  func fillOrder(_ capacities: [Double], in prepared: [PreparedTarget]) -> [Int] {
    let preferred = min(group.preferred, members.count)
    let price = { (position: Int) in
      (prepared[self.members[position]].target.costPerHourUSD ?? 0) / capacities[position]
    }
    return Array(0..<preferred)
      + (preferred..<members.count).sorted { a, b in price(a) != price(b) ? price(a) < price(b) : a < b }
  }
}

/// The variant step: the process's rules decide its capacity (in whole units, a replica at
/// capacity 1 being one), then `VariantFill` turns the change into one change a variant.
extension ScalingEngine {
  func decideVariants(
    _ group: PreparedVariantGroup, signals: SignalTable, replicas: UnsafeBufferPointer<ReplicaStatus?>,
    state: inout EngineState, now: Date, bindings: [TreeBinding], into decision: inout TickDecision
  ) {
    // A variant not read this tick leaves the whole process undecided: its capacity is unknown.
    var read: [ReplicaStatus] = []
    for member in group.members {
      guard let status = replicas[member] else { return }
      read.append(status)
    }
    let learned = variantCapacities(group, statuses: read, signals: signals, state: &state, now: now)
    // Learned capacities change each variant's price per unit, and so the order it is filled in.
    let fill = group.fillOrder(learned, in: prepared)
    let members = fill.map { group.members[$0] }
    let statuses = fill.map { read[$0] }
    let capacities = fill.map { learned[$0] }
    let status = VariantFill.capacityStatus(statuses, capacities)
    let (floor, seasonal) = advanceForecast(
      group.prepared, status: status, signals: signals, state: &state, now: now, into: &decision)
    let context = TargetContext(
      prepared: group.prepared, status: status, signals: signals, now: now, budget: nil,
      others: SharedUsage(),
      floor: floor, floorReplicas: floor?.replicas, seasonal: seasonal,
      capacity: VariantFill.exactCapacity(statuses, capacities))
    let before = state.targets.value(atTarget: group.slot, of: order) ?? TargetState()
    var own = TickDecision()
    state.targets.update(atTarget: group.slot, default: TargetState()) { context.decide(&$0, into: &own) }
    // The process's move is recorded per variant below, with its forecast and SLO sizing; its
    // other records stand as they are.
    let moveRecord = own.events.first { $0.kind == .scaleUp || $0.kind == .scaleDown }
    decision.events += own.events.filter { $0.kind != .scaleUp && $0.kind != .scaleDown }
    guard let move = own.actions.first else { return }

    let capacityBefore = context.capacity?.current ?? 0
    let wanted = Double(move.to)
    var counts = statuses.map(\.current)
    // The ceilings that held a variant below its max while capacity was still short.
    var stops: [(reason: ScaleReason, why: String)] = []
    let firstAction = decision.actions.count
    if move.to > move.from {
      var capacity = capacityBefore
      for (position, index) in members.enumerated() {
        let variant = variantContext(
          index, status: statuses[position], signals, replicas, now, bindings, decision)
        let (reach, stop) = variant.reach()
        let member = VariantFill.Member(
          capacity: capacities[position], current: statuses[position].current, min: variant.target.min,
          reach: reach)
        counts[position] = VariantFill.grow(member, from: capacity, toward: wanted)
        capacity += capacities[position] * Double(counts[position] - statuses[position].current)
        if counts[position] == reach, capacity < wanted - VariantFill.epsilon, let stop { stops.append(stop) }
        // Appended at once, so a variant later in the order that shares a pool or a provider
        // with this one sees its growth.
        appendAction(of: index, from: statuses[position].current, to: counts[position], move, into: &decision)
      }
    } else {
      let shrinking = members.indices.map {
        VariantFill.Member(
          capacity: capacities[$0], current: statuses[$0].current,
          min: prepared[members[$0]].target.min,
          reach: statuses[$0].current)
      }
      counts = VariantFill.shrink(shrinking, toward: wanted)
      // Recorded in the order they are given up: the dearest first.
      for (position, index) in members.enumerated().reversed() {
        appendAction(of: index, from: statuses[position].current, to: counts[position], move, into: &decision)
      }
    }

    let capacityAfter = zip(counts, capacities).reduce(0) { $0 + Double($1.0) * $1.1 }
    let mix = mixSentence(group, members: members, statuses: statuses, counts: counts, capacities: capacities)
    let summary =
      "\(group.group.process.name) capacity \(format(capacityBefore)) -> \(format(capacityAfter)) (wanted \(move.to)): \(move.detail); \(mix)"
    for position in firstAction..<decision.actions.count {
      decision.actions[position].detail = summary
      let action = decision.actions[position]
      let target = prepared[members.first { prepared[$0].target.name == action.process } ?? 0].target
      var record = AuditEvent(
        time: now, process: action.process, kind: action.to > action.from ? .scaleUp : .scaleDown,
        from: action.from, to: action.to, reason: action.reason, detail: summary,
        signals: signals.values(of: group.prepared), budget: nil,
        costPerHourUSD: target.costPerHourUSD.map { $0 * Double(action.to) }, forecast: moveRecord?.forecast)
      record.slo = moveRecord?.slo
      decision.events.append(record)
    }
    let moved = decision.actions.count > firstAction
    state.targets.update(atTarget: group.slot, default: TargetState()) { own in
      own.lastReplicas = VariantFill.units(capacityAfter)
      if !moved {
        // Nothing could move: no cooldown starts, and the blocks written stand.
        own.lastScaleUp = before.lastScaleUp
        own.lastScaleDown = before.lastScaleDown
        own.blocksWritten = before.blocksWritten
      }
      guard move.to > move.from, capacityAfter < wanted - VariantFill.epsilon else { return }
      let reason = stops.first?.reason ?? .maxInstances
      // Reported as any block is: once until the capacity moves (the process's own record step
      // has noted whether it moved).
      if own.noteBlock(TargetState.BlockedMark(reason: reason, wanted: move.to), moved: false) {
        let why = stops.isEmpty ? "every variant is at its max" : stops.map(\.why).joined(separator: "; ")
        decision.events.append(
          AuditEvent(
            time: now, process: group.group.process.name, kind: .blocked, from: move.from, to: move.to,
            reason: reason,
            detail: "wanted capacity \(move.to), the variants reach \(format(capacityAfter)): \(why); \(mix)",
            signals: signals.values(of: group.prepared), budget: nil, costPerHourUSD: nil))
      }
    }
  }

  private func variantContext(
    _ index: Int, status: ReplicaStatus, _ signals: SignalTable,
    _ replicas: UnsafeBufferPointer<ReplicaStatus?>,
    _ now: Date, _ bindings: [TreeBinding], _ decision: TickDecision
  ) -> TargetContext {
    let prepared = self.prepared[index]
    return TargetContext(
      prepared: prepared, status: status, signals: signals, now: now, budget: nil,
      others: prepared.peers.isEmpty
        ? SharedUsage() : sharedUsage(of: prepared.peers, replicas, decision.actions),
      tree: bindings.isEmpty || (budgets.chains[index].isEmpty && !budgets.divided[index])
        ? nil : bindings[index])
  }

  private func appendAction(
    of index: Int, from: Int, to: Int, _ move: ScaleAction, into decision: inout TickDecision
  ) {
    guard to != from else { return }
    let target = prepared[index].target
    decision.actions.append(
      ScaleAction(
        process: target.name, from: from, to: to, reason: move.reason, drainTimeout: target.drainTimeout))
  }

  /// "l4 4 -> 10 ($1.60 a unit), h100 2 ($1.64 a unit)": every variant in fill order, its move
  /// or its count, and its price per unit of capacity.
  private func mixSentence(
    _ group: PreparedVariantGroup, members: [Int], statuses: [ReplicaStatus], counts: [Int],
    capacities: [Double]
  ) -> String {
    let parts = members.indices.map { position -> String in
      let target = prepared[members[position]].target
      let name = target.variant?.variant ?? target.name
      let count =
        counts[position] == statuses[position].current
        ? "\(counts[position])" : "\(statuses[position].current) -> \(counts[position])"
      let learned =
        capacities[position] == target.variant?.capacity
        ? "" : ", capacity \(format(capacities[position])) learned"
      return
        "\(name) \(count) (\(usd((target.costPerHourUSD ?? 0) / capacities[position])) an hour a unit\(learned))"
    }
    let order =
      group.group.preferred > 0 ? "in the order prefer: gives" : "cheapest per unit of capacity first"
    return "variants filled \(order): \(parts.joined(separator: ", "))"
  }
}

extension TargetContext {
  /// The most replicas this variant may run after this tick (its max less draining replicas,
  /// its ceilings, a frozen budget), never below what runs; and, where a ceiling binds below
  /// its max, that ceiling and a sentence naming the variant and why.
  func reach() -> (Int, (reason: ScaleReason, why: String)?) {
    var clamps = ClampTrail()
    let ceilinged = applyCeilings(to: target.max, clamps: &clamps)
    let reach = Swift.max(current, Swift.min(ceilinged, target.max - status.draining))
    let name = target.variant?.variant ?? target.name
    guard let binding = clamps.last else {
      return (
        reach, reach < target.max ? (.maxInstances, "\(name): draining replicas hold it at \(reach)") : nil
      )
    }
    return (reach, (binding.reason, "\(name) held at \(reach): \(describe(binding))"))
  }
}

extension EngineState {
  /// Forgets what a tick decided for `process` (an action the backend did not carry out, or
  /// one held back), restoring its state from `before`; for a variant, its process's state
  /// too, so the next tick decides the capacity again from what runs.
  public mutating func forget(_ process: String, as before: EngineState, in policy: Policy) {
    targets[process] = before.targets[process]
    if let group = policy.target(named: process)?.variant?.group {
      targets[group] = before.targets[group]
    }
  }
}
