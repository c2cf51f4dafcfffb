import Foundation

/// One target of a policy with what every tick needs and the policy fixes, worked out once.
final class PreparedTarget: Sendable {
  let target: ScalingTarget
  /// The signals its proposals read, with their places in the tick's table: any of them
  /// missing vetoes a scale-down, and a record names the missing ones.
  let proposalSignals: [(name: String, position: Int?)]
  let provider: ProviderLimits?
  let pool: GPUPool?
  /// The other targets on the same provider or GPU pool, in policy order, with what one replica
  /// of each takes from them.
  let peers: [PeerShare]
  /// Where the signals it reads sit in a tick's `SignalTable`.
  let trackingPosition: Int?
  let upConditionPositions: ConditionPositions
  let downConditionPositions: ConditionPositions
  let costRatePosition: Int?
  let predictivePosition: Int?
  let isPredictive: Bool
  /// The signals a record lists, with their places in the tick's table, worked out once: a
  /// record looked each name up and built the list again.
  let recordSignals: [(name: String, position: Int?)]
  let hasBudget: Bool
  /// What its count counts, as its records name it: a replica, or a process with variants'
  /// unit of capacity.
  let unit: String
  /// For a process sized on its SLOs, where its signals sit: the load, running and waiting
  /// requests, and each objective's measured latency.
  let sloPositions: SLOPositions?
  /// How long a tick stands for: the controller's interval.
  let tick: TimeInterval

  /// - Parameter sharing: the targets on each provider and on each GPU pool, in policy order.
  init(
    _ target: ScalingTarget, in policy: Policy, positions: [String: Int], sharing: TargetsSharing,
    unit: String = "replica"
  ) {
    self.target = target
    self.unit = unit
    tick = policy.controller.interval
    trackingPosition = target.tracking.flatMap { positions[$0.metric] }
    // Every name a target reads is among the engine's signals, so each has a position.
    upConditionPositions = (target.up.rule?.conditions ?? []).map { positions[$0.metric] ?? 0 }
    downConditionPositions = (target.down.rule?.conditions ?? []).map { positions[$0.metric] ?? 0 }
    costRatePosition = target.budget?.costRateMetric.flatMap { positions[$0] }
    predictivePosition = target.predictive.flatMap { positions[$0.signal] }
    isPredictive = target.predictive != nil
    recordSignals = target.signalNames.map { ($0, positions[$0]) }
    hasBudget = target.budget != nil
    sloPositions = target.slo.map { slo in
      SLOPositions(
        load: positions[slo.load], running: positions[slo.running],
        waiting: slo.waiting.flatMap { positions[$0] },
        measured: slo.objectives.map { positions[$0.measured] },
        within: slo.objectives.map { $0.within.flatMap { positions[$0] } })
    }
    proposalSignals = target.proposalSignalNames.map { ($0, positions[$0]) }
    provider = target.rateLimit.flatMap { policy.provider(named: $0.provider) }
    pool = target.resources.gpuPool.flatMap { policy.gpuPool(named: $0) }
    // Found through the groups, not by comparing every pair: a policy of 10,000 targets would
    // take 100 million comparisons to load.
    let onProvider = target.rateLimit.map { sharing.provider[$0.provider] ?? [] } ?? []
    let inPool = target.resources.gpuPool.map { sharing.pool[$0] ?? [] } ?? []
    peers = Array(Set(onProvider + inPool).subtracting([sharing.index[target.name] ?? -1])).sorted().map {
      PeerShare(policy.targets[$0], at: $0, sharingWith: target)
    }
  }
}

struct SLOPositions {
  var load: Int?
  var running: Int?
  var waiting: Int?
  var measured: [Int?]
  /// Per objective, its share within the bound, where it keeps an error budget.
  var within: [Int?]
}

/// Another target on a target's provider or GPU pool, and what one replica of it takes from
/// them: worked out once, so a tick adds up numbers rather than reading each peer's settings.
struct PeerShare {
  let index: Int
  /// To find its action when it was decided earlier in the same tick.
  let name: String
  /// Per replica, from the shared provider (0 on another provider).
  var tokensPerMinute = 0.0
  var requestsPerMinute = 0.0
  var concurrentRequests = 0.0
  /// Per replica, from the shared GPU pool (0 in another pool).
  var gpus = 0

  init(_ peer: ScalingTarget, at index: Int, sharingWith target: ScalingTarget) {
    self.index = index
    name = peer.name
    if let share = peer.rateLimit, share.provider == target.rateLimit?.provider {
      tokensPerMinute = share.tokensPerMinutePerReplica ?? 0
      requestsPerMinute = share.requestsPerMinutePerReplica ?? 0
      // At least one in flight while it runs, as the ceiling counts its own.
      concurrentRequests = share.concurrentRequestsPerReplica ?? 1
    }
    if let pool = peer.resources.gpuPool, pool == target.resources.gpuPool { gpus = peer.resources.gpus }
  }
}

/// Which targets (by index, in policy order) share each provider and each GPU pool.
struct TargetsSharing {
  var provider: [String: [Int]] = [:]
  var pool: [String: [Int]] = [:]
  var index: [String: Int] = [:]

  init(_ policy: Policy) {
    for (index, target) in policy.targets.enumerated() {
      self.index[target.name] = index
      if let name = target.rateLimit?.provider { provider[name, default: []].append(index) }
      if let name = target.resources.gpuPool { pool[name, default: []].append(index) }
    }
  }
}
