import CapstanBackends
import CapstanCore
import Foundation
import Logging

/// A policy reload (SIGHUP): taken at the next tick, or refused with its errors.
extension Controller {
  /// A valid new policy takes effect at the next tick; the engine's memory carries over for
  /// targets that keep their names. Processes the new policy no longer has are drained to zero,
  /// so nothing keeps running unmanaged. A change of backend needs a restart and is refused.
  public func reload(_ loaded: LoadedPolicy, file: String, now: Date) async {
    guard loaded.policy.backend == policy.backend else {
      rejectReload(
        [
          Diagnostic(
            .error, at: FileLocation(file: file, line: 1, column: 1),
            "backend changed: a running capstan keeps the backend it started with; restart it to switch")
        ], file: file, now: now)
      return
    }
    let removed = policy.targets.filter { old in loaded.policy.target(named: old.name) == nil }
    policy = loaded.policy
    metrics.prepare(
      policy, budgets: state.engine.budgets, namedBudgets: state.engine.budgetTree,
      crashLoops: backend.countsCrashLoops)
    warned = []
    // A reload makes the new processes' series; the old positions no longer hold.
    exportedReplicas = []
    exportedGroupHolds = [:]
    engine = ScalingEngine(policy: loaded.policy)
    historyReadAt = [:]
    historyReadThrough = [:]
    historyArrived = [:]
    readers = makeReaders(loaded.policy, baseDirectory)
    logger.notice(
      "policy reloaded", metadata: ["file": "\(file)", "targets": "\(loaded.policy.targets.count)"])
    record(
      .controller(
        .policyReloaded, reason: .policyReload,
        detail: "reloaded \(file): \(loaded.policy.targets.map(\.name).joined(separator: ", "))", at: now))
    for target in removed {
      state.engine.targets[target.name] = nil
      state.engine.budgets[target.name] = nil
      guard let current = try? await backend.status(of: target).current, current > 0 else { continue }
      let action = ScaleAction(
        process: target.name, from: current, to: 0, reason: .policyReload, drainTimeout: target.drainTimeout)
      do {
        try await backend.apply(action, to: target)
        record(
          .dropped(
            of: target, from: current, detail: "\(target.name) is no longer in \(file): drained",
            at: now))
      } catch {
        logger.error(
          "cannot drain a process the policy dropped",
          metadata: ["process": "\(target.name)", "error": "\(error)"])
      }
    }
    persist()
  }

  /// An invalid policy is refused with its errors; the running one goes on.
  public func rejectReload(_ problems: [Diagnostic], file: String, now: Date) {
    for problem in problems { logger.error("\(problem)") }
    let shown = problems.prefix(3).map(\.description).joined(separator: "; ")
    record(
      .controller(
        .policyRejected, reason: .policyReload,
        detail: "kept the running policy: \(file) has \(problems.count) problem(s): \(shown)", at: now))
  }
}
