import CapstanCore
import CapstanRuntime
import Foundation

extension Controller {
  /// Works out each rate-limited process's share per replica from what runs and what this tick
  /// decided, and publishes what changed: a JSON file per process in `shares/` (replaced
  /// atomically, so a worker reads the old share or the new one, never half of each), the
  /// backend (a Kubernetes annotation), and `/shares`.
  func publishShares(replicas: [String: ReplicaStatus], actions: [ScaleAction]) async {
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
        logger.error(
          "cannot write the share file; workers keep the last one until the next tick writes it",
          metadata: ["process": "\(name)", "error": "\(error)"])
      }
    }
  }
}
