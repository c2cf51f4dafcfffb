import Foundation

/// The records of one target's decision: a count someone else changed, the change (if any),
/// then what held it back (if anything).
extension TargetContext {
  /// What a blocked record says, kept until the record is written. The decision's driver, if
  /// any, is added then rather than held here, so a block stays small enough to copy as plain
  /// memory.
  enum Block {
    case clamp(Clamp)
    case missingData(Proposal)
    case notReady(Proposal)
    /// The SLO sizing held a scale-down its objectives allow (`SLOSizing.beforeHold`).
    case sloHold(Proposal)
  }

  /// An `external_change` record when the replicas are not what Capstan last saw or set.
  func noteExternalChange(since expected: Int?, into decision: inout TickDecision) {
    guard let expected, expected != current else { return }
    decision.events.append(
      .externalChange(
        of: target, from: expected, to: current, signals: signals.values(of: prepared), at: now))
  }

  /// The action and its record when the count moves, then the blocked record, deduplicated:
  /// a block is reported again only after the count has moved, since while it stays put,
  /// flapping between the same wanted counts would otherwise repeat the same records every few
  /// ticks (`TargetState.noteBlock`).
  func record(
    _ outcome: Outcome, combined: Combined, proposals: Proposals, clamps: ClampTrail,
    state: inout TargetState, into decision: inout TickDecision
  ) {
    let next = outcome.replicas
    let wanted = combined.wanted
    let driver = combined.driver
    let moved = next != current
    state.lastReplicas = next
    if moved {
      let reason = outcome.boundClamp?.reason ?? moveReason(next: next, wanted: wanted, driver: driver)
      let detail = moveSentence(outcome, combined: combined, clamps: clamps)
      decision.actions.append(
        ScaleAction(
          process: target.name, from: current, to: next, reason: reason, drainTimeout: target.drainTimeout,
          detail: detail))
      decision.events.append(
        event(next > current ? .scaleUp : .scaleDown, to: next, reason: reason, detail: detail, after: next))
      // Only a move the rules or tracking made starts a direction's cooldown: one that min, max,
      // a restore or the predictive floor made is not theirs to hold back.
      if outcome.boundClamp == nil, reason != .minInstances, reason != .maxInstances {
        if next > current { state.lastScaleUp = now } else { state.lastScaleDown = now }
      }
    }

    let blocked = self.blocked(outcome, combined: combined, proposals: proposals, clamps: clamps)
    let mark = blocked.map { TargetState.BlockedMark(reason: $0.reason, wanted: $0.wanted) }
    if state.noteBlock(mark, moved: moved), let blocked {
      decision.events.append(
        event(
          .blocked, to: blocked.wanted, reason: blocked.reason,
          detail: describe(blocked.why, wanted: blocked.wanted, driver: driver), after: next))
    }
  }

  /// What held the count from what was wanted, if anything: the last clamp that moved it (a
  /// clamp that raised a count toward the predictive floor blocks nothing; one that held a
  /// scale-down above it does), else missing data, else a hold of the SLO sizing, else replicas
  /// still starting.
  func blocked(_ outcome: Outcome, combined: Combined, proposals: Proposals, clamps: ClampTrail)
    -> (reason: ScaleReason, wanted: Int, why: Block)?
  {
    let next = outcome.replicas
    if let binding = clamps.last(where: {
      $0.before != $0.after && $0.reason != .minInstances
        && !($0.reason == .predictiveFloor && $0.before >= current)
    }),
      binding.before != current, binding.before != next
    {
      return (binding.reason, binding.before, .clamp(binding))
    }
    if let vetoed = combined.vetoedByMissingData, next == current {
      return (.signalMissing, vetoed.replicas, .missingData(vetoed))
    }
    // A hold at min holds nothing min would not.
    if let held = proposals.heldBySLO(), next == held.proposal.replicas, bound(held.wanted) < next {
      return (held.proposal.reason, bound(held.wanted), .sloHold(held.proposal))
    }
    if next == current, combined.driver == nil, let starting = proposals.holdingForStarting(current),
      let readyOnly = starting.readyOnly
    {
      return (.replicasNotReady, readyOnly, .notReady(starting))
    }
    return nil
  }

  func moveReason(next: Int, wanted: Int, driver: Proposal?) -> ScaleReason {
    if let driver, (next > current) == (wanted > current), wanted != current { return driver.reason }
    return next > current ? .minInstances : .maxInstances
  }

  func event(_ kind: AuditEventKind, to: Int, reason: ScaleReason, detail: String, after: Int) -> AuditEvent {
    AuditEvent(
      time: now, process: target.name, kind: kind, from: current, to: to, reason: reason, detail: detail,
      signals: signals.values(of: prepared),
      budget: budget,
      costPerHourUSD: target.costPerHourUSD.map { $0 * Double(after) }, forecast: floor)
  }
}
