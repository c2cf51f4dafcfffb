import CapstanBackends
import CapstanCore
import Foundation

/// Carrying out a tick's actions: each on its own process, a conflict read and decided again.
extension Controller {
  /// Each action on its own process, up to `concurrentActions` at once.
  func carryOutAll(
    _ actions: [ScaleAction], before: EngineState, signals: [String: Double], now: Date
  ) async {
    await withTaskGroup(of: Void.self) { group in
      var running = 0
      for action in actions {
        guard let target = policy.target(named: action.process) else { continue }
        if running == Self.concurrentActions {
          await group.next()
          running -= 1
        }
        group.addTask {
          await self.carryOut(action, target: target, before: before, signals: signals, now: now)
        }
        running += 1
      }
    }
  }

  /// Carries out one action. A conflict (someone else wrote the target since it was read) is
  /// re-read and re-decided from what is there now, a bounded number of times.
  func carryOut(
    _ action: ScaleAction, target: ScalingTarget, before: EngineState, signals: [String: Double], now: Date
  ) async {
    var action = action
    var conflicts = 0
    while true {
      do {
        try await backend.apply(action, to: target)
        metrics.action(action)
        logger.notice(
          "scaled",
          metadata: [
            "process": "\(action.process)", "from": "\(action.from)", "to": "\(action.to)",
            "reason": "\(action.reason.rawValue)",
          ])
        return
      } catch {
        // The change did not happen: forget it, so the next decision starts from what runs.
        state.engine.forget(action.process, as: before, in: policy)
        persist()
        metrics.backendError(action.process)
        let conflict = (error as? BackendError)?.conflict == true && conflicts < Self.conflictRetries
        logger.error(
          conflict
            ? "the target changed under the write; reading it again" : "the backend refused the change",
          metadata: ["process": "\(action.process)", "error": "\(error)"])
        record(
          .refused(
            action,
            detail:
              "the backend did not carry out \(action.from) -> \(action.to): \(error)\(conflict ? "; reading it again and deciding again" : "")",
            signals: target.signalNames.map { ($0, signals[$0]) },
            costPerHourUSD: target.costPerHourUSD.map { $0 * Double(action.from) }, at: now))
        guard conflict else { return }
        conflicts += 1
        guard let next = await redecide(target, signals: signals, now: now) else { return }
        action = next
      }
    }
  }

  /// Reads one target again and decides it again with this tick's signals. Only that target is
  /// in the inputs, so nothing else is decided twice; the budget has already been advanced to
  /// `now`, so it adds nothing.
  func redecide(_ target: ScalingTarget, signals: [String: Double], now: Date) async -> ScaleAction? {
    let status: ReplicaStatus
    do {
      status = try await backend.status(of: target)
    } catch {
      logger.error(
        "cannot read replicas again: deciding at the next tick",
        metadata: ["process": "\(target.name)", "error": "\(error)"])
      return nil
    }
    let (decision, next) = engine.decide(
      EngineInputs(signals: signals, replicas: [target.name: status]), state: state.engine, now: now)
    state.engine = next
    persist()
    for event in decision.events { record(event) }
    return decision.actions.first
  }
}
