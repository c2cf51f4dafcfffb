import CapstanCore
import Foundation

extension Controller {
  /// The tick's replicas, blocks, holds and crash loops, as metrics.
  func exportMetrics(replicas: [String: ReplicaStatus], decision: TickDecision, now: Date) async {
    for event in decision.events where event.kind == .blocked {
      metrics.blocked(event.process, reason: event.reason)
    }
    if exportedReplicas.count != policy.targets.count {
      exportedReplicas = Array(repeating: nil, count: policy.targets.count)
    }
    let decided = Dictionary(
      decision.actions.map { ($0.process, $0.to) }, uniquingKeysWith: { first, _ in first })
    for (index, target) in policy.targets.enumerated() {
      guard let status = replicas[target.name] else { continue }
      let exported = ExportedReplicas(
        desired: decided[target.name] ?? status.current, current: status.current, ready: status.ready,
        held: state.engine.targets[target.name]?.lastBlocked?.reason)
      if exportedReplicas[index] != exported {
        metrics.replicas(
          target.name, desired: exported.desired, current: exported.current, ready: exported.ready)
        metrics.held(target.name, was: exportedReplicas[index]?.held, now: exported.held)
        exportedReplicas[index] = exported
      }
      if let ledger = state.engine.budgets[target.name] {
        metrics.budget(
          target.policyName ?? target.name, spent: ledger.spentUSD, frozen: ledger.state == .frozen)
      }
      for (objective, standing) in budgetStandings(target, at: now) {
        metrics.errorBudget(target.name, latency: objective.latency.rawValue, standing)
      }
      if backend.countsCrashLoops {
        metrics.crashLooping(target.name, replicas: await backend.crashLoopingReplicas(of: target))
      }
    }
    // What the tick's view worked out for each process with variants (`TickView.tick`).
    for group in policy.variantGroups {
      guard let capacity = seen.replicas[group.process.name] else { continue }
      let held = state.engine.targets[group.process.name]?.lastBlocked?.reason
      metrics.held(group.process.name, was: exportedGroupHolds[group.process.name], now: held)
      exportedGroupHolds[group.process.name] = held
      metrics.capacity(
        group.process.name, desired: seen.desired[group.process.name] ?? capacity.current,
        current: capacity.current, ready: capacity.ready)
      for name in group.fillOrder {
        guard let declared = policy.target(named: name)?.variant?.capacity else { continue }
        metrics.variantCapacity(name, state.engine.targets[name]?.learnedCapacity ?? declared)
      }
    }
  }
}

/// The replica counts a process's gauges show, and what holds it.
struct ExportedReplicas: Equatable {
  var desired: Int
  var current: Int
  var ready: Int
  var held: ScaleReason?
}
