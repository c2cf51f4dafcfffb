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
  /// The numbers behind it, kept so the sentence is written only when a record or `validate`
  /// shows it: the engine checks ceilings on every tick that grows.
  var basis: Basis

  enum Basis: Sendable, Equatable {
    case max(source: String, max: Int)
    case cost(limit: Double, perReplica: Double)
    case rateLimit(
      provider: String, what: String, limit: Double, margin: Double, used: Double, perReplica: Double)
    case gpuPool(pool: String, gpus: Int, others: Int, perReplica: Int)
  }

  /// One clause naming the numbers, such as "max_cost_per_hour_usd 100 / 4.1 per replica allows 24".
  public var explanation: String {
    switch basis {
    case .max(let source, let max): return "\(source) is \(max)"
    case .cost(let limit, let cost):
      return
        "max_cost_per_hour_usd \(Ceilings.format(limit)) at \(Ceilings.format(cost)) USD/h per replica allows \(replicas)"
    case .rateLimit(let provider, let what, let limit, let margin, let used, let perReplica):
      let taken = used > 0 ? " less \(Ceilings.format(used)) used by other processes" : ""
      return
        "provider '\(provider)' \(what) \(Ceilings.format(limit)) × safety margin \(Ceilings.format(margin))\(taken) at \(Ceilings.format(perReplica)) per replica allows \(replicas)"
    case .gpuPool(let pool, let gpus, let others, let perReplica):
      let taken = others > 0 ? " (\(others) in use by other processes)" : ""
      return "GPU pool '\(pool)' has \(gpus) GPUs\(taken) at \(perReplica) per replica, room for \(replicas)"
    }
  }
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
    guard let replicas = costReplicas(target), let limit = target.maxCostPerHourUSD,
      let cost = target.costPerHourUSD
    else { return nil }
    return Ceiling(reason: .costCeiling, replicas: replicas, basis: .cost(limit: limit, perReplica: cost))
  }

  /// The count the cost ceiling allows; nil without one. The engine checks every ceiling on
  /// each tick that grows, and needs only the count: these `…Replicas` functions give it as a
  /// plain number, and the `Ceiling`, which carries the names its sentence shows, is built from
  /// the same function when a record or `validate` needs it.
  static func costReplicas(_ target: ScalingTarget) -> Int? {
    guard let limit = target.maxCostPerHourUSD, let cost = target.costPerHourUSD, cost > 0 else { return nil }
    return Int(saturating: (limit / cost + 1e-9).rounded(.down))
  }

  /// One of a provider's limits, as a rate-limit ceiling names it.
  enum RateLimitKind {
    case tokensPerMinute, requestsPerMinute, concurrentRequests

    var key: String {
      switch self {
      case .tokensPerMinute: "tokens_per_minute"
      case .requestsPerMinute: "requests_per_minute"
      case .concurrentRequests: "max_concurrent_requests"
      }
    }

    func limit(of provider: ProviderLimits) -> Double? {
      switch self {
      case .tokensPerMinute: provider.tokensPerMinute
      case .requestsPerMinute: provider.requestsPerMinute
      case .concurrentRequests: provider.maxConcurrentRequests
      }
    }

    func perReplica(of target: ScalingTarget) -> Double? {
      switch self {
      case .tokensPerMinute: target.rateLimit?.tokensPerMinutePerReplica
      case .requestsPerMinute: target.rateLimit?.requestsPerMinutePerReplica
      // A replica that runs holds at least one request in flight, declared or not.
      case .concurrentRequests: target.rateLimit.map { $0.concurrentRequestsPerReplica ?? 1 }
      }
    }

    func used(by others: SharedUsage) -> Double {
      switch self {
      case .tokensPerMinute: others.tokensPerMinute
      case .requestsPerMinute: others.requestsPerMinute
      case .concurrentRequests: others.concurrentRequests
      }
    }
  }

  /// Replicas beyond what the provider's limits (times the safety margin) can feed, after what
  /// other processes on the same provider take.
  public static func rateLimit(_ target: ScalingTarget, provider: ProviderLimits, others: SharedUsage)
    -> Ceiling?
  {
    guard let (replicas, kind) = rateLimitReplicas(target, provider: provider, others: others),
      let limit = kind.limit(of: provider), let perReplica = kind.perReplica(of: target)
    else { return nil }
    return Ceiling(
      reason: .rateLimitCeiling, replicas: replicas,
      basis: .rateLimit(
        provider: provider.name, what: kind.key, limit: limit, margin: provider.safetyMargin,
        used: kind.used(by: others), perReplica: perReplica))
  }

  /// The count the tightest of the provider's limits allows, and which limit that is; on a tie,
  /// the first in the order tokens, requests, concurrent requests.
  static func rateLimitReplicas(_ target: ScalingTarget, provider: ProviderLimits, others: SharedUsage)
    -> (replicas: Int, kind: RateLimitKind)?
  {
    guard target.rateLimit != nil else { return nil }
    var tightest: (replicas: Int, kind: RateLimitKind)?
    func consider(_ kind: RateLimitKind) {
      guard let limit = kind.limit(of: provider), let perReplica = kind.perReplica(of: target), perReplica > 0
      else { return }
      let available = max(0, limit * provider.safetyMargin - kind.used(by: others))
      let replicas = Int(saturating: (available / perReplica + 1e-9).rounded(.down))
      if replicas < (tightest?.replicas ?? .max) { tightest = (replicas, kind) }
    }
    consider(.tokensPerMinute)
    consider(.requestsPerMinute)
    consider(.concurrentRequests)
    return tightest
  }

  /// Replicas across a pool cannot use more whole GPUs than it has.
  public static func gpuPool(_ target: ScalingTarget, pool: GPUPool, othersGPUs: Int) -> Ceiling? {
    guard let replicas = gpuPoolReplicas(target, pool: pool, othersGPUs: othersGPUs) else { return nil }
    return Ceiling(
      reason: .gpuPool, replicas: replicas,
      basis: .gpuPool(pool: pool.name, gpus: pool.gpus, others: othersGPUs, perReplica: target.resources.gpus)
    )
  }

  /// The count the GPU pool has room for; nil for a target that takes no GPU.
  static func gpuPoolReplicas(_ target: ScalingTarget, pool: GPUPool, othersGPUs: Int) -> Int? {
    guard target.resources.gpus > 0 else { return nil }
    return max(0, pool.gpus - othersGPUs) / target.resources.gpus
  }

  public static func format(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : printf("%.4g", value)
  }

  /// One number through C's `snprintf`, which costs less than Foundation's `String(format:)`
  /// and gives the same text.
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
        basis: .max(source: target.maxSource.rawValue, max: target.max))
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
