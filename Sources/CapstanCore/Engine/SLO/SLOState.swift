import Foundation

/// What an SLO-sized process has learned: a latency model per objective, how long a request
/// stays in flight, how many requests a replica takes before requests wait, and the load's
/// trend. Kept in the saved state, so a restart does not start learning again.
public struct SLOState: Sendable, Equatable, Codable {
  /// Per latency an objective bounds (its raw name), that latency against per-replica
  /// concurrency.
  public var latencies: [String: LatencyModel] = [:]
  /// How long a request stays in flight, by Little's law.
  public var duration = LittleEstimate()
  /// What a replica serves at once before requests wait: the most a replica of a settled fleet
  /// has been seen to run at once, from the second tick in a row on which at least one request
  /// a replica was waiting. Nil until then.
  public var fullAt: Double?
  /// The most requests a replica of an all-ready fleet has run at once with nothing waiting
  /// and every latency under half its bound: how far the band rule may consolidate before the
  /// slots are known. Optional, so a state saved before it was kept still loads.
  public var comfortable: Double?
  /// Since when every tick of an all-ready fleet of one count has found at least one request a
  /// replica waiting; nil while fewer wait.
  public var waitingSince: Date?
  public var trend = LoadTrend()
  /// Per-replica concurrency, smoothed over about the minute a measured latency spans.
  public var concurrency: Double?
  /// The replica count of the last tick, and since when it has run; for a process with
  /// variants, its capacity too, exactly.
  public var replicas: Int?
  public var capacity: Double?
  public var replicasSince: Date?
  /// Whether a replica was starting at the last tick; and when the fleet last became all ready
  /// after one was, with what each objective measured at that tick. For `measuredOver` after
  /// it, a measured latency still spans time before the new replica served.
  public var starting: Bool?
  public var readyAt: Date?
  public var measuredAtReady: [Double?]?
  /// Per latency an objective with a period bounds (its raw name), its error budget. Optional,
  /// so a state saved before any objective had a period still loads.
  public var budgets: [String: ErrorBudget]?
  /// The last tick a measured latency was above its bound.
  public var aboveAt: Date?
  /// Per latency an objective with a measured share within its bound bounds (its raw name), the
  /// share missed by per-unit load.
  public var misses: [String: MissCurve]?
  /// The most requests in flight (running and waiting) a minute, over the last minutes: what a
  /// scale-down is checked against. Optional, so a state saved before it was kept still loads.
  public var peaks: RecentPeaks?

  public init() {}

  var isSound: Bool {
    latencies.values.allSatisfy(\.isSound) && duration.isSound
      && (fullAt.map { $0.isFinite && $0 > 0 && $0 <= PolicyLimits.maxMagnitude } ?? true) && trend.isSound
      && (comfortable.map { $0.isFinite && $0 >= 0 && $0 <= PolicyLimits.maxMagnitude } ?? true)
      && (concurrency.map { $0.isFinite && $0 >= 0 && $0 <= PolicyLimits.maxMagnitude } ?? true)
      && (capacity.map { $0.isFinite && $0 >= 0 && $0 <= PolicyLimits.maxMagnitude } ?? true)
      && (measuredAtReady ?? []).allSatisfy { $0.map { $0.isFinite && $0 >= 0 } ?? true }
      && (budgets ?? [:]).values.allSatisfy(\.isSound)
      && (misses ?? [:]).values.allSatisfy(\.isSound)
      && (peaks?.isSound ?? true)
  }
}

/// Seconds a request stays in flight, by Little's law: requests in flight over requests
/// arriving a second, each summed over recent ticks with older ticks forgotten. A ratio of
/// sums, not a mean of ratios: a tick's ratio is large whenever a burst has arrived and the
/// smoothed load has not caught up, and those ticks would skew a mean up several times over.
public struct LittleEstimate: Sendable, Equatable, Codable {
  public private(set) var samples = 0
  var weight = 0.0
  var running = 0.0
  var load = 0.0
  var concurrency = 0.0

  /// Each tick weighs the sums so far by this: about the last hundred ticks count.
  static let forgetting = 0.99

  public init() {}

  mutating func add(running: Double, load: Double, concurrency: Double) {
    guard running.isFinite, load.isFinite, concurrency.isFinite, running >= 0, load >= 0, concurrency >= 0,
      running <= PolicyLimits.maxMagnitude, load <= PolicyLimits.maxMagnitude,
      concurrency <= PolicyLimits.maxMagnitude
    else { return }
    let f = Self.forgetting
    weight = weight * f + 1
    self.running = self.running * f + running
    self.load = self.load * f + load
    self.concurrency = self.concurrency * f + concurrency
    samples += 1
  }

  /// Seconds; nil before `LatencyModel.minSamples` ticks with load.
  public var seconds: Double? {
    guard samples >= LatencyModel.minSamples, load > 0, running > 0 else { return nil }
    return running / load
  }

  /// The per-replica concurrency the estimate was measured at, on average.
  public var meanConcurrency: Double { weight > 0 ? concurrency / weight : 0 }

  /// Each sum within what `add` reaches: values of at most 1e15, a hundred ticks' worth.
  var isSound: Bool {
    samples >= 0
      && [weight, running, load, concurrency].allSatisfy {
        $0.isFinite && $0 >= 0 && $0 <= PolicyLimits.maxMagnitude / (1 - Self.forgetting)
      }
  }
}

/// The load's level and slope, smoothed (Holt's linear method), to look a startup ahead.
public struct LoadTrend: Sendable, Equatable, Codable {
  /// Requests a second.
  public var level = 0.0
  /// Requests a second, per second.
  public var slope = 0.0
  public var last: Date?
  /// Arrivals a tick, and their squares, smoothed: how much more the load varies from tick to
  /// tick than Poisson arrivals would.
  var arrivals = 0.0
  var arrivalSquares = 0.0

  /// How much of each new value the level takes, and of each new slope the slope.
  static let levelWeight = 0.2
  static let slopeWeight = 0.05

  public init() {}

  /// Adds the load of a tick `tick` seconds after the last. Where more than two ticks have
  /// passed (the controller was down, paused or had lost its lease), it saw nothing between:
  /// the level and slope start again from this load, as they would be stale, and the arrivals'
  /// dispersion takes no sample, since arrivals counted over the gap are not a tick's.
  public mutating func add(_ load: Double, at now: Date, tick: TimeInterval) {
    guard load.isFinite, load >= 0, load <= PolicyLimits.maxMagnitude else { return }
    guard let last, now > last else {
      if self.last == nil {
        level = load
        self.last = now
      }
      return
    }
    let elapsed = now.timeIntervalSince(last)
    self.last = now
    guard elapsed <= 2 * tick else {
      level = load
      slope = 0
      return
    }
    let previous = level
    level = Self.levelWeight * load + (1 - Self.levelWeight) * (level + slope * elapsed)
    slope = Self.slopeWeight * (level - previous) / elapsed + (1 - Self.slopeWeight) * slope
    slope = min(max(slope, -PolicyLimits.maxMagnitude), PolicyLimits.maxMagnitude)
    level = min(max(level, 0), PolicyLimits.maxMagnitude)
    let count = min(load * tick, PolicyLimits.maxMagnitude)
    arrivals = Self.dispersionWeight * count + (1 - Self.dispersionWeight) * arrivals
    arrivalSquares = Self.dispersionWeight * count * count + (1 - Self.dispersionWeight) * arrivalSquares
  }

  static let dispersionWeight = 0.02

  /// Arrivals' variance over their mean, tick to tick: 1 for Poisson arrivals, more for
  /// bursts. At least 1.
  public var dispersion: Double {
    guard arrivals > 0 else { return 1 }
    return min(max((arrivalSquares - arrivals * arrivals) / arrivals, 1), 100)
  }

  /// The load `ahead` seconds from now: the smoothed level, and its rise over that time where
  /// it is rising. A burst one tick long moves it by a share, not whole: the measured latency
  /// answers for what the smoothing misses.
  public func forecast(ahead: TimeInterval) -> Double? {
    guard last != nil else { return nil }
    return max(level + max(slope, 0) * ahead, 0)
  }

  /// Each within what `add` keeps it to: a count of arrivals at most 1e15, so their squares at
  /// most 1e30.
  var isSound: Bool {
    [level, slope, arrivals].allSatisfy { $0.isFinite && abs($0) <= PolicyLimits.maxMagnitude }
      && arrivalSquares.isFinite && arrivalSquares >= 0
      && arrivalSquares <= PolicyLimits.maxMagnitude * PolicyLimits.maxMagnitude
  }
}
