import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A replica count that more replicas cannot lift: money, a provider's rate limit, a GPU pool.
public struct Ceiling: Sendable, Equatable {
  public var reason: ScaleReason
  public var replicas: Int
  /// One clause naming the numbers, such as "max_cost_per_hour_usd 100 / 4.1 per replica allows 24".
  public var explanation: String
}

/// What other processes already take from a shared provider or GPU pool.
public struct SharedUsage: Sendable, Equatable {
  public var tokensPerMinute: Double = 0
  public var requestsPerMinute: Double = 0
  public var concurrentRequests: Double = 0
  public var gpus: Int = 0

  public init() {}
}

public enum Ceilings {
  /// Replicas × cost_per_hour_usd may not exceed max_cost_per_hour_usd.
  public static func cost(_ target: ScalingTarget) -> Ceiling? {
    guard let limit = target.maxCostPerHourUSD, let cost = target.costPerHourUSD, cost > 0 else { return nil }
    let replicas = Int(saturating: (limit / cost + 1e-9).rounded(.down))
    return Ceiling(
      reason: .costCeiling, replicas: replicas,
      explanation:
        "max_cost_per_hour_usd \(format(limit)) at \(format(cost)) USD/h per replica allows \(replicas)")
  }

  /// Replicas beyond what the provider's limits (times the safety margin) can feed, after what
  /// other processes on the same provider take.
  public static func rateLimit(_ target: ScalingTarget, provider: ProviderLimits, others: SharedUsage)
    -> Ceiling?
  {
    guard let share = target.rateLimit else { return nil }
    var tightest: Ceiling?
    func consider(_ limit: Double?, _ perReplica: Double?, _ used: Double, _ what: String) {
      guard let limit, let perReplica, perReplica > 0 else { return }
      let available = max(0, limit * provider.safetyMargin - used)
      let replicas = Int(saturating: (available / perReplica + 1e-9).rounded(.down))
      if replicas < (tightest?.replicas ?? .max) {
        let taken = used > 0 ? " less \(format(used)) used by other processes" : ""
        tightest = Ceiling(
          reason: .rateLimitCeiling, replicas: replicas,
          explanation:
            "provider '\(provider.name)' \(what) \(format(limit)) × safety margin \(format(provider.safetyMargin))\(taken) at \(format(perReplica)) per replica allows \(replicas)"
        )
      }
    }
    consider(
      provider.tokensPerMinute, share.tokensPerMinutePerReplica, others.tokensPerMinute, "tokens_per_minute")
    consider(
      provider.requestsPerMinute, share.requestsPerMinutePerReplica, others.requestsPerMinute,
      "requests_per_minute")
    consider(
      provider.maxConcurrentRequests, share.concurrentRequestsPerReplica, others.concurrentRequests,
      "max_concurrent_requests")
    return tightest
  }

  /// Replicas across a pool cannot use more whole GPUs than it has.
  public static func gpuPool(_ target: ScalingTarget, pool: GPUPool, othersGPUs: Int) -> Ceiling? {
    guard target.resources.gpus > 0 else { return nil }
    let free = max(0, pool.gpus - othersGPUs)
    let replicas = free / target.resources.gpus
    let taken = othersGPUs > 0 ? " (\(othersGPUs) in use by other processes)" : ""
    return Ceiling(
      reason: .gpuPool, replicas: replicas,
      explanation:
        "GPU pool '\(pool.name)' has \(pool.gpus) GPUs\(taken) at \(target.resources.gpus) per replica, room for \(replicas)"
    )
  }

  public static func format(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : printf("%.4g", value)
  }

  /// One number through C's `snprintf`: Foundation's `String(format:)` took longer than the
  /// decision whose record it wrote.
  static func printf(_ format: String, _ value: Double) -> String {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
      guard let base = buffer.baseAddress else { return "" }
      _ = withVaList([value]) { vsnprintf(base, buffer.count, format, $0) }
      return String(cString: base)
    }
  }
}

/// The ceilings of a target taken alone, for `capstan validate` and for checking `min` fits.
public enum StaticCeiling {
  public static func all(for target: ScalingTarget, providers: [ProviderLimits], pools: [GPUPool])
    -> [Ceiling]
  {
    var ceilings = [
      Ceiling(
        reason: .maxInstances, replicas: target.max,
        explanation: "\(target.maxSource.rawValue) is \(target.max)")
    ]
    if let cost = Ceilings.cost(target) { ceilings.append(cost) }
    if let share = target.rateLimit, let provider = providers.first(where: { $0.name == share.provider }),
      let ceiling = Ceilings.rateLimit(target, provider: provider, others: SharedUsage())
    {
      ceilings.append(ceiling)
    }
    if let poolName = target.resources.gpuPool, let pool = pools.first(where: { $0.name == poolName }),
      let ceiling = Ceilings.gpuPool(target, pool: pool, othersGPUs: 0)
    {
      ceilings.append(ceiling)
    }
    return ceilings
  }

  /// The lowest ceiling; on a tie the first in clamp order (max before cost before rate limit).
  public static func binding(for target: ScalingTarget, in policy: Policy) -> Ceiling {
    let ceilings = all(for: target, providers: policy.providers, pools: policy.gpuPools)
    // `all` always holds max first, so there is a lowest.
    return ceilings.dropFirst().reduce(ceilings[0]) { $1.replicas < $0.replicas ? $1 : $0 }
  }
}
