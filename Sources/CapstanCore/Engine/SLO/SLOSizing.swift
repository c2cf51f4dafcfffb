import Foundation

/// What one tick of an SLO-sized process observed.
struct SLOObservation {
  /// Requests arriving a second; nil: missing.
  var load: Double?
  /// Requests in flight, all replicas together.
  var running: Double?
  /// Requests waiting; nil: missing, or the policy names no such signal.
  var waiting: Double?
  /// Per objective, in the policy's order, the measured latency in seconds.
  var measured: [Double?]
  /// Per objective, the share of requests within its bound, where it keeps an error budget.
  var within: [Double?] = []
  var status: ReplicaStatus
  var now: Date
  /// The controller's interval: the span one tick's arrivals are counted over, and past twice
  /// which the controller saw nothing between two ticks.
  var tick: TimeInterval
  /// The fleet in units of capacity, exactly, for a process with variants (whose status counts
  /// whole units); nil: a replica is a unit.
  var capacity: ExactCapacity? = nil

  /// What one unit of the fleet runs at once; at most 1e15, as any signal is, where a fleet
  /// of less than a unit runs near that many.
  func concurrency(_ running: Double) -> Double {
    min(running / (capacity?.current ?? Double(status.current)), PolicyLimits.maxMagnitude)
  }

  /// A replica is starting: for a process with variants, one of any size, which a count of
  /// whole units may not show.
  var starting: Bool {
    guard let capacity else { return status.ready < status.current }
    return capacity.ready < capacity.current - VariantFill.epsilon
  }

  /// Nothing arrives, runs or waits: a latency missing now is an idle process's silence, not
  /// an outage.
  var idle: Bool { load == 0 && running == 0 && (waiting ?? 0) == 0 }
}

/// The replicas an SLO-sized process needs, and every number that went into them, for the
/// decision and its record.
public struct SLOSizing: Sendable, Equatable {
  public enum Mode: String, Sendable, Codable {
    /// Sized from the learned models.
    case model
    /// The models are not ready: a band rule on the measured latency.
    case band
  }

  /// One objective at this tick: what it bounds, what was measured, and its model.
  public struct ObjectiveState: Sendable, Equatable {
    public var latency: SLOScaling.Latency
    public var percentile: Double
    public var bound: Double
    public var measured: Double?
    /// Nil for a queue wait, which needs no model, and for a model not yet fitted.
    public var fit: LatencyFit?
    /// The most requests a replica may run at once within the bound, with headroom.
    public var capacity: Double?
    /// Where the objective keeps an error budget and it allows enough misses to steer by.
    public var budget: ErrorBudget.Standing?

    /// The percentile this tick is sized for: the budget's aim, or the objective's own.
    public var aim: Double { budget?.aim ?? percentile }
  }

  public var mode: Mode
  /// Why the models are not ready, for a band decision.
  public var notReady: String?
  public var objectives: [ObjectiveState]
  /// Requests a second arriving now, and expected a startup ahead: the higher of the load's
  /// trend and, where one is on, its seasonal profile.
  public var load: Double
  public var forecast: Double
  public var trend: Double
  public var seasonal: SeasonalLoad?
  /// Seconds a request stays in flight at `capacity`.
  public var duration: Double?
  /// Requests one replica may run at once.
  public var capacity: Double?
  /// What one replica serves at once before requests wait, where seen.
  public var slots: Double?
  /// The replicas the objectives need; before any ceiling, min or max.
  public var replicas: Int
  /// What Little's law alone gives, before the queueing check adds any for waiting.
  public var byLittle: Int?
  /// What the queueing check gives, from Little's count, where it ran.
  public var byQueueing: Int?
  /// What the share missed, measured by per-unit load, asks for, where it asks for more than
  /// the model.
  public var byMisses: MissSizing?
  /// The arrivals' dispersion the queueing check stretched waits by, where it ran.
  public var dispersion: Double?
  /// Where the busiest minute lately held a scale-down: the most requests in flight, what a
  /// replica has room for, and the count that room needs.
  public var consolidation: Consolidation?
  /// The measured latency was above a bound, and so the count is one more than the model
  /// gives.
  public var corrected = false
  /// Why a scale-down the model or the band rule allows was held.
  public var heldDown: String?
  /// Where a hold kept more replicas than the objectives ask for (`heldDown`, or the busiest
  /// minute's `consolidation`): the count they ask for.
  public var beforeHold: Int?
  /// A latency is above its bound, but the replica that last became ready may not show in it
  /// yet: the model's count stands without one more for it.
  public var settling = false
  /// A latency is above its bound, but every objective above its bound has half its error
  /// budget or more left: the count stands, and the misses are spent from the budget.
  public var spending = false
}

enum SLOSizer {
  /// Below this many requests expected in flight, with none arriving, no replica is needed.
  static let minimumInFlight = 0.01
  /// The most replicas past the Little's-law count a queueing check adds.
  static let queueSearch = 256
  /// Above this many slots in all, the waiting part is left to Little's law: the Erlang C
  /// sum is linear in slots, and a fleet this large waits little at the load it is sized for.
  static let largestErlang = 100_000.0

  /// Adds this tick's samples: only from a fleet whose replicas are all ready and none
  /// draining, so each replica's share of the load is what it runs.
  static func learn(_ observation: SLOObservation, _ slo: SLOScaling, state: inout SLOState) {
    if let load = observation.load { state.trend.add(load, at: observation.now, tick: observation.tick) }
    count(observation, slo, state: &state)
    if let running = observation.running {
      var peaks = state.peaks ?? RecentPeaks()
      peaks.add(running + (observation.waiting ?? 0), at: observation.now)
      state.peaks = peaks
    }
    let status = observation.status
    // A process with variants changes size when its capacity does: an L4 more of three is
    // the same whole unit, and not the same fleet.
    if state.replicas != status.current || state.capacity != observation.capacity?.current {
      state.replicas = status.current
      state.capacity = observation.capacity?.current
      state.replicasSince = observation.now
      state.waitingSince = nil
    }
    let starting = observation.starting
    if state.starting == true, !starting {
      state.readyAt = observation.now
      state.measuredAtReady = observation.measured
    }
    state.starting = starting
    guard status.current > 0, !starting, status.draining == 0,
      let running = observation.running, running.isFinite, running >= 0
    else {
      state.waitingSince = nil
      return
    }
    let concurrency = observation.concurrency(running)
    let waiting = observation.waiting ?? 0
    if waiting == 0, comfortable(observation, slo) {
      state.comfortable = max(state.comfortable ?? 0, concurrency)
    }
    state.waitingSince =
      observation.concurrency(waiting) >= 1 ? state.waitingSince ?? observation.now : nil
    // Samples need every replica ready and the count held for the span a latency is measured
    // over, so no sample mixes two fleet sizes.
    let settled =
      state.replicasSince.map { observation.now.timeIntervalSince($0) >= slo.measuredOver } ?? true
    if settled { learnMisses(observation, slo, state: &state) }
    guard concurrency > 0 else { return }
    if waiting == 0, let load = observation.load {
      state.duration.add(running: running, load: load, concurrency: concurrency)
    }
    // A measured latency spans `measuredOver` (a histogram's `rate(…[1m])`): it is paired with
    // the concurrency smoothed over about that span, and learned only once the replica count
    // has held that long and the concurrency has not just jumped, so a latency of the span
    // before a change is not put beside the concurrency after it.
    let smoothed = state.concurrency.map { $0 + smoothing * (concurrency - $0) } ?? concurrency
    state.concurrency = smoothed
    guard settled, abs(concurrency - smoothed) <= steadiness * smoothed else { return }
    // The mean over replicas never exceeds what one serves at once, so the most seen is a floor
    // under it. Requests are taken to wait for slots once a settled fleet with a steady
    // concurrency has had at least one waiting a replica on two ticks in a row: a request that
    // arrives during an engine step waits for the next one with slots free, so a scrape often
    // finds one or two waiting on a server far from full (more often where the engine runs
    // late, as on a busy host), and seldom the next scrape too, while a full replica's queue
    // stays; a queue building up in a rise is counted before the concurrency averaged over the
    // last minute has caught up; and requests queued on one replica while another has just
    // joined wait at a low mean. A floor set that low would size the pool for slots it has.
    let queued = state.waitingSince.map { observation.now > $0 } ?? false
    if queued || state.fullAt != nil {
      state.fullAt = max(state.fullAt ?? 0, concurrency)
    }
    for (index, objective) in slo.objectives.enumerated() where objective.latency != .queueWait {
      guard let value = observation.measured[index] else { continue }
      // A latency that includes waiting is learned only when nothing waits: the model is of
      // serving, and the wait is the queueing estimate's.
      if objective.latency.includesWaiting && waiting > 0 { continue }
      state.latencies[objective.latency.rawValue, default: LatencyModel()].add(
        concurrency: smoothed, latency: value)
    }
  }

  /// How much of each tick's concurrency the smoothed one takes: about a minute of 15 s ticks.
  static let smoothing = 0.25
  /// How far the concurrency may stand from its smoothed value for a sample to be taken.
  static let steadiness = 0.25

  /// The replicas the objectives need at the load expected `ahead` seconds from now: the higher
  /// of the load's trend there and what `seasonal`, where a profile is on, expects.
  static func size(
    _ observation: SLOObservation, _ slo: SLOScaling, state: SLOState, ahead: TimeInterval,
    seasonal: SeasonalLoad?, max limit: Int
  ) -> SLOSizing {
    let load = observation.load ?? 0
    let trend = state.trend.forecast(ahead: ahead) ?? load
    let forecast = max(trend, seasonal?.load ?? 0)
    let current = observation.status.current
    var objectives: [SLOSizing.ObjectiveState] = []
    var notReady: [String] = []
    for (index, objective) in slo.objectives.enumerated() {
      var entry = SLOSizing.ObjectiveState(
        latency: objective.latency, percentile: objective.percentile, bound: objective.bound,
        measured: observation.measured[index])
      if objective.latency != .queueWait {
        switch (state.latencies[objective.latency.rawValue] ?? LatencyModel()).status {
        case .ready(let fit): entry.fit = fit
        case .learning(let samples, let buckets):
          notReady.append(
            "\(objective.latency.rawValue) has \(samples) samples over \(buckets) concurrencies (needs \(LatencyModel.minSamples) over \(LatencyModel.minBuckets))"
          )
        case .rejected(let fit):
          notReady.append(
            "\(objective.latency.rawValue)'s fit falls as concurrency rises (\(milliseconds(fit.beta)) a request), so it is not used"
          )
        }
      }
      objectives.append(entry)
    }
    standings(&objectives, slo, state: state, now: observation.now)
    let measuredDuration = state.duration.seconds
    if measuredDuration == nil {
      notReady.append(
        "request duration has \(state.duration.samples) ticks with requests in flight (needs \(LatencyModel.minSamples))"
      )
    }
    var sizing = SLOSizing(
      mode: .band, objectives: objectives, load: load, forecast: forecast, trend: trend, seasonal: seasonal,
      slots: state.fullAt, replicas: current)
    guard notReady.isEmpty, let measuredDuration else {
      sizing.notReady = notReady.joined(separator: "; ")
      sizing.replicas = band(observation, slo, state: state, held: &sizing.heldDown)
      // The band rule holds only the one replica it would remove.
      if sizing.heldDown != nil { sizing.beforeHold = current - 1 }
      return sizing
    }
    sizing.mode = .model
    // Not trusted far past what was seen: twice the largest concurrency, or what a replica
    // serves before requests wait.
    let largest = max(
      state.latencies.values.map(\.largestConcurrency).max() ?? 0, state.duration.meanConcurrency, 1)
    let cap = state.fullAt ?? 2 * largest
    var capacity = cap
    // An objective whose share within its bound is measured is sized by the share it missed
    // at each load (below), not by its model: a latency that includes waiting, measured as a
    // percentile over a minute, takes in the waits of that minute's bursts, and its line would
    // count them as serving time.
    let measuredMisses = slo.objectives.map { $0.within != nil && $0.latency.includesWaiting }
    for index in sizing.objectives.indices where !measuredMisses[index] {
      guard let fit = sizing.objectives[index].fit else { continue }
      let most = fit.capacity(within: sizing.objectives[index].bound, limit: cap)
      sizing.objectives[index].capacity = most
      capacity = min(capacity, most)
    }
    sizing.capacity = capacity
    let itl = sizing.objectives.first { $0.latency == .itl }?.fit
    let duration = Self.duration(
      measuredDuration, measuredAt: state.duration.meanConcurrency, at: capacity, steps: itl)
    sizing.duration = duration
    guard capacity > 1e-9 else {
      // Not even one request a replica meets the bound: as many replicas as allowed.
      sizing.replicas = forecast > 0 ? limit : current
      return sizing
    }
    let inFlight = forecast * duration
    // One replica while load arrives, or while the smoothed load still expects a request in
    // flight now and then; none once it has died away (a process whose min is 0).
    let needsOne = load > 0 || inFlight >= minimumInFlight
    var replicas = max(ceilCount(inFlight / capacity), needsOne ? 1 : 0)
    sizing.byLittle = replicas
    // The queueing check estimates waits from the mean load; for an objective whose misses are
    // measured, the measure stands in its place.
    let estimated = sizing.objectives.indices.filter { !measuredMisses[$0] }.map { sizing.objectives[$0] }
    if let slots = state.fullAt, estimated.contains(where: { $0.latency.includesWaiting }) {
      sizing.dispersion = state.trend.dispersion
      // From Little's count, which saturates at Int.max where the load is near 1e15 and the
      // capacity tiny: the search ends counted from the lower of it and the max.
      let end = min(replicas, limit) + queueSearch
      while replicas < end && replicas < limit
        && !waitsWithin(
          estimated, replicas: replicas, slots: slots, inFlight: inFlight, duration: duration,
          burstiness: state.trend.dispersion)
      {
        replicas += 1
      }
      sizing.byQueueing = replicas
    }
    if var misses = missUnits(sizing.objectives, state: state, load: state.trend.level, limit: limit),
      misses.units > replicas
    {
      misses.model = replicas
      sizing.byMisses = misses
      replicas = misses.units
    }
    sizing.replicas = replicas
    sizing.settling = settling(observation, slo, state: state)
    correct(&sizing, observation, current: current)
    if measuredMisses.contains(true) {
      consolidate(&sizing, state: state, now: observation.now, current: current, duration: duration)
    }
    if sizing.replicas < current, let held = overspent(sizing, state: state, now: observation.now) {
      sizing.heldDown = held
      sizing.beforeHold = sizing.beforeHold ?? sizing.replicas
      sizing.replicas = current
    }
    return sizing
  }

  /// Seconds a request stays in flight at `concurrency`: as measured, and, where an
  /// inter-token latency is learned, longer by as much as a decode step is longer there than
  /// at the concurrency it was measured at.
  static func duration(
    _ measured: Double, measuredAt: Double, at concurrency: Double, steps: LatencyFit?
  ) -> Double {
    let seconds = max(measured, 1e-6)
    guard let steps else { return seconds }
    let step = steps.predict(measuredAt)
    guard step > 0 else { return seconds }
    return seconds * max(steps.predict(concurrency) / step, 1)
  }

  /// Whether a latency is above its bound while the replica that last became ready may not yet
  /// show in it: within `measuredOver` of the tick it became ready, and no latency above its
  /// bound higher than it was then. A latency that has risen since is a pool still short.
  static func settling(_ observation: SLOObservation, _ slo: SLOScaling, state: SLOState) -> Bool {
    guard let readyAt = state.readyAt, let before = state.measuredAtReady,
      before.count == slo.objectives.count
    else { return false }
    let elapsed = observation.now.timeIntervalSince(readyAt)
    guard elapsed >= 0, elapsed < slo.measuredOver else { return false }
    var above = false
    for (index, objective) in slo.objectives.enumerated() {
      guard let value = observation.measured[index], value > objective.bound else { continue }
      guard let then = before[index], value <= then else { return false }
      above = true
    }
    return above
  }

  /// The measured latency corrects the model: above a bound with no replica starting, one
  /// replica more than it, unless the replica that last became ready may not show in it yet;
  /// and a scale-down only where every latency is measured and within its bound.
  static func correct(_ sizing: inout SLOSizing, _ observation: SLOObservation, current: Int) {
    let starting = observation.starting
    let above = sizing.objectives.first { ($0.measured ?? 0) > $0.bound }
    sizing.spending = above != nil && spends(sizing.objectives)
    if above != nil, !sizing.spending, !starting, !sizing.settling, sizing.replicas <= current {
      sizing.replicas = current + 1
      sizing.corrected = true
    } else if sizing.replicas < current {
      if !observation.idle, let missing = sizing.objectives.first(where: { $0.measured == nil }) {
        sizing.heldDown = "\(missing.latency.rawValue) is not measured"
        sizing.beforeHold = sizing.replicas
        sizing.replicas = current
      } else if let above {
        sizing.heldDown =
          "\(above.latency.rawValue) \(milliseconds(above.measured ?? 0)) is above its bound \(milliseconds(above.bound))"
        sizing.beforeHold = sizing.replicas
        sizing.replicas = current
      }
    }
  }
}

/// A number to two decimals, trailing zeros dropped: 15.2, 16.
func hundredths(_ value: Double) -> String { format((value * 100).rounded() / 100) }

func milliseconds(_ seconds: Double) -> String {
  abs(seconds) < 1
    ? "\(format((seconds * 100_000).rounded() / 100))ms" : "\(format((seconds * 1000).rounded() / 1000))s"
}
