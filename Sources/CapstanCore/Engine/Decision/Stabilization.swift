import Foundation

/// Step 6: stabilization.
extension TargetContext {
  /// The HPA's rule: the lowest recommendation in the scale-up window and the highest in the
  /// scale-down window bound the change, so a brief dip or spike does not move the count.
  func stabilize(_ recommendation: Int, _ state: inout TargetState, clamps: inout ClampTrail) -> Int {
    let next = stabilized(recommendation, &state)
    guard next != recommendation else { return next }
    let up = recommendation > next
    clamps.append(
      Clamp(
        reason: .stabilization, before: recommendation, after: next,
        basis: .stabilization(up: up, window: target.rules(up ? .up : .down).stabilization, holding: next)))
    return next
  }

  /// The windows' bound on the change, with this tick's recommendation remembered in them.
  private func stabilized(_ recommendation: Int, _ state: inout TargetState) -> Int {
    let horizon = max(target.up.stabilization, target.down.stabilization)
    if state.recommendations.isEmpty && state.lastScaleUp == nil && state.lastScaleDown == nil {
      // First sight of this target (a fresh start or a new policy): what runs now counts as a
      // recommendation, so starting the controller never scales down before a full window.
      state.recommendations.append(.init(time: now, replicas: bound(current)))
    }
    // Looked for before removing, since most ticks remove nothing. The closure captures a local
    // time rather than `self`, so it holds a number, not a copy of the context.
    let time = now
    let expired = { (past: TargetState.Recommendation) in time.timeIntervalSince(past.latest) >= horizon }
    if state.recommendations.contains(where: expired) { state.recommendations.removeAll(where: expired) }
    if let last = state.recommendations.indices.last, state.recommendations[last].replicas == recommendation {
      state.recommendations[last].until = now
    } else {
      state.recommendations.append(.init(time: now, replicas: recommendation))
    }
    var upBound = recommendation
    var downBound = recommendation
    for past in state.recommendations {
      let age = now.timeIntervalSince(past.latest)
      if age < target.up.stabilization { upBound = min(upBound, past.replicas) }
      if age < target.down.stabilization { downBound = max(downBound, past.replicas) }
    }
    var result = current
    if result < upBound { result = upBound }
    if result > downBound { result = downBound }
    return result
  }
}
