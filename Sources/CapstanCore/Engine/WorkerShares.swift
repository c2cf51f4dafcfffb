import Foundation

/// What one replica of a process may use of its provider's limits, so a fleet of workers that
/// each keep to their share stays inside the limit, whatever the replica count: Capstan caps
/// the count under the limit, and this tells each replica its part.
public struct WorkerShare: Sendable, Equatable, Codable {
  public var process: String
  public var provider: String
  /// The replicas the process's part is divided among (at least 1: what a first replica gets).
  public var replicas: Int
  public var requestsPerMinute: Double?
  public var tokensPerMinute: Double?
  /// Requests in flight at once: the requests-per-minute share × `request_seconds` / 60 and the
  /// provider's concurrency share, the lower of those given, rounded down, so the replicas
  /// together never hold more than the limit × margin. The rate-limit ceiling counts each
  /// running replica as holding at least one, so the count stays within the limit; 0 is left
  /// only for replicas a scale-down is still draining, and a replica told 0 waits.
  public var concurrentRequests: Int?

  enum CodingKeys: String, CodingKey {
    case process, provider, replicas
    case requestsPerMinute = "requests_per_minute"
    case tokensPerMinute = "tokens_per_minute"
    case concurrentRequests = "concurrent_requests"
  }

  public init(
    process: String, provider: String, replicas: Int, requestsPerMinute: Double?, tokensPerMinute: Double?,
    concurrentRequests: Int?
  ) {
    self.process = process
    self.provider = provider
    self.replicas = replicas
    self.requestsPerMinute = requestsPerMinute
    self.tokensPerMinute = tokensPerMinute
    self.concurrentRequests = concurrentRequests
  }
}

public enum WorkerShares {
  /// The shares after a tick: each process counted at the replicas that may be sending, the
  /// larger of its count before and after this tick's change plus any still draining, as the
  /// engine counts a peer's hold on a shared provider.
  public static func compute(
    policy: Policy, replicas: [String: ReplicaStatus], actions: [ScaleAction]
  ) -> [String: WorkerShare] {
    var sending: [String: Int] = [:]
    for (name, status) in replicas {
      let current = actions.last { $0.process == name }.map { max($0.from, $0.to) } ?? status.current
      sending[name] = current + status.draining
    }
    return compute(policy: policy, replicas: sending)
  }

  /// Each limit × the provider's safety margin is divided among the processes on the provider
  /// in proportion to what their replicas declare they use (`*_per_replica`), or per replica
  /// where not every process declares that limit, and then equally among each process's
  /// replicas. A process at zero gets what its first replica would.
  /// - Parameter replicas: per process, the replicas that may be sending: the larger of the
  ///   counts before and after a change, plus any still draining.
  public static func compute(policy: Policy, replicas: [String: Int]) -> [String: WorkerShare] {
    var shares: [String: WorkerShare] = [:]
    for target in policy.targets {
      guard let share = target.rateLimit, let provider = policy.provider(named: share.provider),
        let own = replicas[target.name]
      else { continue }
      let members = policy.targets.filter { $0.rateLimit?.provider == provider.name }
      // A process at zero is counted at one, the others as they are.
      func count(_ member: ScalingTarget) -> Int {
        member.name == target.name ? max(own, 1) : max(replicas[member.name] ?? 0, 0)
      }
      func perReplica(_ limit: Double?, _ declared: (RateLimitShare) -> Double?) -> Double? {
        guard let limit else { return nil }
        let weighed = members.allSatisfy { $0.rateLimit.flatMap(declared) != nil }
        func weight(_ member: ScalingTarget) -> Double {
          Double(count(member)) * (weighed ? member.rateLimit.flatMap(declared) ?? 0 : 1)
        }
        let total = members.reduce(0) { $0 + weight($1) }
        guard total > 0 else { return nil }
        return limit * provider.safetyMargin * weight(target) / total / Double(count(target))
      }
      let requests = perReplica(provider.requestsPerMinute) { $0.requestsPerMinutePerReplica }
      let tokens = perReplica(provider.tokensPerMinute) { $0.tokensPerMinutePerReplica }
      let concurrent = perReplica(provider.maxConcurrentRequests) { $0.concurrentRequestsPerReplica }
      var caps: [Double] = []
      if let requests, let seconds = share.requestSeconds { caps.append(requests * seconds / 60) }
      if let concurrent { caps.append(concurrent) }
      shares[target.name] = WorkerShare(
        process: target.name, provider: provider.name, replicas: max(own, 1),
        requestsPerMinute: requests.map(rounded), tokensPerMinute: tokens.map(rounded),
        concurrentRequests: caps.min().map { Int(saturating: ($0 + 1e-9).rounded(.down)) })
    }
    return shares
  }

  /// To a thousandth: a share is a budget, and floating-point tails only make files differ.
  static func rounded(_ value: Double) -> Double { (value * 1000).rounded(.down) / 1000 }
}
