import Foundation

/// A latency learned online against the requests one replica runs at once:
/// `latency = α + β · concurrency`, the linear law a batching engine's step time follows (each
/// request in the batch adds to every step).
///
/// Samples are kept in buckets of concurrency, each forgetting its older samples as new ones
/// arrive (recursive least squares with forgetting, per bucket), and the fit is weighted least
/// squares over every bucket. So an hour spent at one concurrency refreshes what is known
/// there without erasing what was learned at the others: the fit keeps the range it has seen,
/// as the Dynamo planner keeps samples across batch sizes.
public struct LatencyModel: Sendable, Equatable, Codable {
  /// One bucket's weighted sums: of the weights, the concurrencies, the latencies, their
  /// squares and their products.
  public struct Bucket: Sendable, Equatable, Codable {
    var key: Int
    var weight = 0.0
    var concurrency = 0.0
    var latency = 0.0
    var concurrencySquares = 0.0
    var products = 0.0
    var latencySquares = 0.0

    /// Each sum within what `add` reaches: values of at most 1e15 (so squares and products of
    /// at most 1e30), about ten samples' worth.
    var isSound: Bool {
      let most = PolicyLimits.maxMagnitude / (1 - LatencyModel.forgetting)
      return [weight, concurrency, latency].allSatisfy { $0.isFinite && $0 >= 0 && $0 <= most }
        && [concurrencySquares, products, latencySquares].allSatisfy {
          $0.isFinite && $0 >= 0 && $0 <= most * PolicyLimits.maxMagnitude
        }
    }
  }

  /// In order of key; at most `maxBuckets`.
  public private(set) var buckets: [Bucket] = []
  /// Samples taken since the model began.
  public private(set) var samples = 0
  /// The highest concurrency a sample came from: the fit is not trusted far past it.
  public private(set) var largestConcurrency = 0.0

  /// Each new sample in a bucket weighs the bucket's older ones by this: about the last ten
  /// samples at a concurrency count.
  public static let forgetting = 0.9
  /// Samples before a fit is used: 5 minutes of 15-second ticks.
  public static let minSamples = 20
  /// Buckets with samples before a fit is used, so its slope comes from a range of concurrency.
  public static let minBuckets = 3
  /// Eight buckets to each doubling of concurrency: fine where a batch is small, coarse where
  /// one more request changes little.
  static let bucketsPerDoubling = 8.0
  static let maxBuckets = 160
  /// Standard errors of the fitted line added to a prediction as headroom.
  public static let headroom = 2.0

  public init() {}

  /// Adds one sample; a value that is not a finite, non-negative number is left out.
  public mutating func add(concurrency: Double, latency: Double) {
    guard concurrency.isFinite, latency.isFinite, concurrency >= 0, latency >= 0,
      concurrency <= PolicyLimits.maxMagnitude, latency <= PolicyLimits.maxMagnitude
    else { return }
    let key = min(Int((log2(1 + concurrency) * Self.bucketsPerDoubling).rounded()), Self.maxBuckets - 1)
    let index = buckets.firstIndex { $0.key >= key } ?? buckets.endIndex
    if index == buckets.endIndex || buckets[index].key != key { buckets.insert(Bucket(key: key), at: index) }
    let f = Self.forgetting
    buckets[index].weight = buckets[index].weight * f + 1
    buckets[index].concurrency = buckets[index].concurrency * f + concurrency
    buckets[index].latency = buckets[index].latency * f + latency
    buckets[index].concurrencySquares = buckets[index].concurrencySquares * f + concurrency * concurrency
    buckets[index].products = buckets[index].products * f + concurrency * latency
    buckets[index].latencySquares = buckets[index].latencySquares * f + latency * latency
    samples += 1
    largestConcurrency = max(largestConcurrency, concurrency)
  }

  /// What the model can say now.
  public enum Status: Sendable, Equatable {
    /// Too few samples, or too narrow a range of concurrency, to fit a line.
    case learning(samples: Int, buckets: Int)
    /// Latency falls as concurrency rises: not a law a batching server follows, so noise or a
    /// change under way; not used.
    case rejected(LatencyFit)
    case ready(LatencyFit)

    public var fit: LatencyFit? {
      if case .ready(let fit) = self { return fit }
      return nil
    }
  }

  public var status: Status {
    guard samples >= Self.minSamples, buckets.count >= Self.minBuckets, let fit = fitted() else {
      return .learning(samples: samples, buckets: buckets.count)
    }
    return fit.beta < 0 ? .rejected(fit) : .ready(fit)
  }

  /// The weighted least-squares line over every bucket; nil when the concurrencies do not
  /// vary.
  public func fitted() -> LatencyFit? {
    var s0 = 0.0
    var sb = 0.0
    var sy = 0.0
    var sbb = 0.0
    var sby = 0.0
    var syy = 0.0
    for bucket in buckets {
      s0 += bucket.weight
      sb += bucket.concurrency
      sy += bucket.latency
      sbb += bucket.concurrencySquares
      sby += bucket.products
      syy += bucket.latencySquares
    }
    guard s0 > 2 else { return nil }
    let meanB = sb / s0
    let meanY = sy / s0
    let spread = sbb - sb * sb / s0
    guard spread > 1e-9 * max(1, sbb) else { return nil }
    let covariance = sby - sb * sy / s0
    let beta = covariance / spread
    let alpha = meanY - beta * meanB
    let total = max(0, syy - sy * sy / s0)
    let residualSquares = max(0, total - beta * covariance)
    let residual = (residualSquares / max(s0 - 2, 1)).squareRoot()
    return LatencyFit(
      alpha: alpha, beta: beta, samples: samples, residual: residual,
      rSquared: total > 0 ? 1 - residualSquares / total : 1, weight: s0, meanConcurrency: meanB,
      spread: spread, largestConcurrency: largestConcurrency)
  }

  var isSound: Bool {
    samples >= 0 && largestConcurrency.isFinite && largestConcurrency >= 0 && buckets.count <= Self.maxBuckets
      && buckets.allSatisfy(\.isSound)
  }
}

/// A fitted line, `latency = alpha + beta · concurrency`, with what its uncertainty needs.
public struct LatencyFit: Sendable, Equatable {
  /// Seconds at no concurrency.
  public var alpha: Double
  /// Seconds each request running at once adds.
  public var beta: Double
  public var samples: Int
  /// The standard deviation of the samples about the line, in seconds.
  public var residual: Double
  /// The share of the samples' variance the line explains, 0 to 1.
  public var rSquared: Double
  var weight: Double
  var meanConcurrency: Double
  var spread: Double
  public var largestConcurrency: Double

  public func predict(_ concurrency: Double) -> Double { alpha + beta * concurrency }

  /// The prediction with `LatencyModel.headroom` standard errors of the line added: wider the
  /// further from the concurrencies it was fitted on.
  public func upper(_ concurrency: Double) -> Double {
    let distance = concurrency - meanConcurrency
    let error = residual * (1 / weight + distance * distance / spread).squareRoot()
    return predict(concurrency) + LatencyModel.headroom * error
  }

  /// The highest concurrency up to `limit` whose latency, with headroom, is within `bound`;
  /// 0 where even one request's is not.
  public func capacity(within bound: Double, limit: Double) -> Double {
    guard limit > 0 else { return 0 }
    if upper(limit) <= bound { return limit }
    // `upper` rises past the fitted mean, and the answer is the last point within the bound:
    // a fixed number of halvings keeps it bounded.
    var low = 0.0
    var high = limit
    guard upper(low) <= bound || upper(min(meanConcurrency, limit)) <= bound else { return 0 }
    if upper(low) > bound { low = min(meanConcurrency, limit) }
    for _ in 0..<60 {
      let middle = (low + high) / 2
      if upper(middle) <= bound { low = middle } else { high = middle }
    }
    return low
  }
}
