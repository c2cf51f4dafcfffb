import CapstanCore
import CapstanRuntime
import Foundation

extension Controller {
  /// Works out each rate-limited process's share per replica from what runs and what this tick
  /// decided, and publishes what changed: a JSON file per process in `shares/` (replaced
  /// atomically, so a worker reads the old share or the new one, never half of each), the
  /// backend (a Kubernetes annotation), and `/shares`.
  /// - Returns: per process whose share could not be written to a place, why.
  func publishShares(replicas: [String: ReplicaStatus], actions: [ScaleAction]) async -> [String: String] {
    var failed: [String: String] = [:]
    let computed = WorkerShares.compute(policy: policy, replicas: replicas, actions: actions)
    for (name, share) in computed.sorted(by: { $0.key < $1.key }) {
      // A dry run shows its shares at /shares but tells no worker: it acts on nothing.
      guard !dryRun else {
        shares[name] = share
        continue
      }
      // Each place is written until it takes the share, apart from the others.
      if sharesInBackend[name] != share, let target = policy.target(named: name) {
        do {
          try await backend.publish(share, for: target)
          sharesInBackend[name] = share
        } catch {
          failed[name] = "the backend did not take it: \(error)"
          logger.error(
            "the backend did not take the share; trying again next tick",
            metadata: ["process": "\(name)", "error": "\(error)"])
        }
      }
      guard shares[name] != share else { continue }
      do {
        try StateStore<WorkerShare>(directory: sharesDirectory, name: "\(name).json").save(share)
        shares[name] = share
        logger.info(
          "share published",
          metadata: [
            "process": "\(name)", "replicas": "\(share.replicas)",
            "requests_per_minute": "\(share.requestsPerMinute.map { "\($0)" } ?? "-")",
            "tokens_per_minute": "\(share.tokensPerMinute.map { "\($0)" } ?? "-")",
            "concurrent_requests": "\(share.concurrentRequests.map { "\($0)" } ?? "-")",
          ])
      } catch {
        failed[name] =
          failed[name]
          ?? "cannot write \(sharesDirectory.appendingPathComponent("\(name).json").path): \(error)"
        logger.error(
          "cannot write the share file; workers keep the last one until the next tick writes it",
          metadata: ["process": "\(name)", "error": "\(error)"])
      }
    }
    return failed
  }

  /// Fails closed where a share could not be published: a scale-up of any process on that
  /// provider would add replicas while some replica still holds its larger, older share, so it
  /// is held (a `blocked` record, reason `share_unpublished`) and the engine forgets it, to
  /// decide it again next tick. Scale-downs go ahead: a leaving replica's share is counted
  /// until it is gone.
  /// - Returns: the actions to carry out, the events to record, and why shares went unpublished
  ///   (nil when every one was published), which `/healthz` reports whether or not a scale-up
  ///   was held this tick.
  func holdScaleUps(
    unpublished: [String: String], decision: TickDecision, before: EngineState, now: Date
  ) -> (actions: [ScaleAction], events: [AuditEvent], why: String?) {
    guard !unpublished.isEmpty else { return (decision.actions, decision.events, nil) }
    let providers = Set(unpublished.keys.compactMap { policy.target(named: $0)?.rateLimit?.provider })
    let reasons = unpublished.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
    var actions: [ScaleAction] = []
    var events = decision.events
    for action in decision.actions {
      guard action.to > action.from, let target = policy.target(named: action.process),
        let provider = target.rateLimit?.provider, providers.contains(provider)
      else {
        actions.append(action)
        continue
      }
      state.engine.forget(action.process, as: before, in: policy)
      let detail =
        "wanted \(action.to) (\(action.detail)); the rate-limit share on provider '\(provider)' could not be published (\(reasons.joined(separator: "; "))): no scale-up until every replica can be told its share"
      if let index = events.firstIndex(where: { $0.process == action.process && $0.kind == .scaleUp }) {
        events[index] = AuditEvent(
          time: now, process: action.process, kind: .blocked, from: action.from, to: action.to,
          reason: .shareUnpublished, detail: detail, signals: events[index].signals,
          budget: events[index].budget,
          costPerHourUSD: target.costPerHourUSD.map { $0 * Double(action.from) })
      }
    }
    let why = unpublished.sorted { $0.key < $1.key }.map {
      "cannot publish the rate-limit share of \($0.key): \($0.value)"
    }
    return (actions, events, why.joined(separator: "; "))
  }
}
