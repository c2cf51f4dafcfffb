import CapstanCore
import Foundation

/// Searches the policy's own knobs for the cheapest settings that keep every SLO: candidates
/// are scored on the first part of each trace and the best on the rest (the holdout), so the
/// winner is not only fitted to the past. Deterministic for a seed; candidates run on every core.
public struct Tuner: Sendable {
  public struct Options: Sendable {
    public var candidates = 200
    /// The share of each trace, at its end, kept for scoring.
    public var holdout = 0.5
    public var seed: UInt64 = 1
    /// How each run begins; the oracle that warm starts are taken from is the file's own.
    public var start: Simulator.Start = .oracle
    /// The tuning part is cut into this many windows, and a candidate is feasible only where
    /// every window meets the SLO: an average over the whole part can hide an hour the policy
    /// lost, which the holdout will not forgive. 1 judges the part whole.
    public var windows = 4
    public init() {}
  }

  /// One run's verdict: whether every traced process met its SLO, and what it cost.
  public struct Score: Sendable, Equatable {
    public var feasible: Bool
    /// USD where processes have `cost_per_hour_usd`, replica-hours otherwise.
    public var cost: Double
    /// The lowest SLO attainment over the processes.
    public var attainment: Double

    /// Feasible before infeasible; then the cheaper; then, among infeasible, the nearer to the SLO.
    func isBetter(than other: Score) -> Bool {
      if feasible != other.feasible { return feasible }
      if feasible { return cost < other.cost }
      if attainment != other.attainment { return attainment > other.attainment }
      return cost < other.cost
    }
  }

  public struct Candidate: Sendable {
    /// Its place in the order generated: the tie-break, so ranks repeat exactly.
    public var index: Int
    /// Per knob: the value tried, or nil for the file's own.
    public var values: [Double?]
    public var tuning: Score
    public var holdout: Score?
  }

  public struct Outcome: Sendable {
    public var knobs: [Knob]
    /// Best first; the file's own settings are candidate `original`.
    public var ranked: [Candidate]
    public var original: Candidate
    public var split: (tuningSeconds: Double, holdoutSeconds: Double)
    /// The yardsticks on each part: the oracle and the best static pool under the file's min
    /// and max, scored as candidates are.
    public var oracle: (tuning: Score, holdout: Score?)
    public var staticPool: (tuning: Score, holdout: Score?)
    public var start: Simulator.Start
  }

  public let policy: Policy
  public let traces: [String: Trace]
  public let knobs: [Knob]
  public let options: Options

  public init(policy: Policy, traces: [String: Trace], knobs: [Knob], options: Options)
    throws(SimulationError)
  {
    _ = try Simulator(policy: policy, traces: traces)
    self.policy = policy
    self.traces = traces
    self.knobs = knobs
    self.options = options
  }

  /// - Throws: a trace's read error (a file changed since it was loaded).
  public func run(progress: @Sendable (Int, Int) -> Void = { _, _ in }) throws -> Outcome {
    // Every candidate reads the same requests: they are read once and held in memory.
    let held = try traces.mapValues { try $0.inMemory() }
    let span = try held.values.compactMap { try $0.collect().last?.arrival }.max() ?? 0
    let cut = span * (1 - options.holdout)
    let tuning = try held.mapValues { try $0.window(from: 0, to: cut) }
    let holdout = try held.mapValues { try $0.window(from: cut, to: .infinity) }

    // The oracle and static pools of each part, found once: every candidate starts as they do.
    let tuningYardstick = try yardstick(on: tuning)
    let window = options.windows > 1 && cut > 0 ? cut / Double(options.windows) : nil
    let holdoutYardstick = try yardstick(on: holdout)
    var generator = SplitMix64(seed: options.seed)
    // The file's own first; then each knob kept or moved at random, each set tried once.
    var candidates: [[Double?]] = [Array(repeating: nil, count: knobs.count)]
    var seen: Set<[Double?]> = [candidates[0]]
    let possible = knobs.reduce(1.0) { $0 * Double($1.candidates.count + 1) }
    var attempts = 0
    while Double(candidates.count) < min(Double(max(1, options.candidates)), possible)
      && attempts < 100 * options.candidates
    {
      attempts += 1
      let values: [Double?] = knobs.map { knob in
        generator.next() % 2 == 0
          ? nil : knob.candidates[Int(generator.next() % UInt64(knob.candidates.count))]
      }
      if seen.insert(values).inserted { candidates.append(values) }
    }
    let tried = candidates
    let scores = ConcurrentResults<Score>(count: tried.count)
    let done = Counter()
    DispatchQueue.concurrentPerform(iterations: tried.count) { index in
      scores.set(index, score(tried[index], on: tuning, yardstick: tuningYardstick, window: window))
      progress(done.increment(), tried.count)
    }
    var ranked = candidates.indices.compactMap { index in
      scores.get(index).map { Candidate(index: index, values: candidates[index], tuning: $0, holdout: nil) }
    }
    ranked.sort {
      $0.tuning.isBetter(than: $1.tuning) || (!$1.tuning.isBetter(than: $0.tuning) && $0.index < $1.index)
    }
    let shown = min(5, ranked.count)
    let best = ranked.prefix(shown).map(\.values)
    DispatchQueue.concurrentPerform(iterations: shown) { index in
      scores.set(index, score(best[index], on: holdout, yardstick: holdoutYardstick))
    }
    for index in 0..<shown { ranked[index].holdout = scores.get(index) }
    let none = Score(feasible: false, cost: 0, attainment: 0)
    var original = Candidate(
      index: 0, values: candidates[0],
      tuning: score(candidates[0], on: tuning, yardstick: tuningYardstick, window: window) ?? none,
      holdout: nil)
    original.holdout = score(candidates[0], on: holdout, yardstick: holdoutYardstick)
    let asWritten = candidates[0]
    func baseline(_ baseline: Baseline) -> (tuning: Score, holdout: Score?) {
      (
        score(asWritten, on: tuning, yardstick: tuningYardstick, baseline: baseline, window: window) ?? none,
        score(asWritten, on: holdout, yardstick: holdoutYardstick, baseline: baseline)
      )
    }
    return Outcome(
      knobs: knobs, ranked: ranked, original: original, split: (cut, max(0, span - cut)),
      oracle: baseline(.oracle), staticPool: baseline(.staticPool), start: options.start)
  }

  /// The policy with a candidate's values; nil where they do not make a valid policy.
  public func policy(with values: [Double?]) -> Policy? {
    var tuned = policy
    for (knob, value) in zip(knobs, values) {
      guard let value else { continue }
      if let index = tuned.targets.firstIndex(where: { $0.name == knob.process && $0.variant == nil }) {
        knob.apply(&tuned.targets[index], value)
      } else if let index = tuned.variantGroups.firstIndex(where: { $0.process.name == knob.process }) {
        knob.apply(&tuned.variantGroups[index].process, value)
      }
    }
    let processes = tuned.targets + tuned.variantGroups.map(\.process)
    return processes.allSatisfy { $0.min <= $0.max } ? tuned : nil
  }

  /// The file's own oracle and static pools on a part of the traces; nil for an empty part.
  private func yardstick(on traces: [String: Trace]) throws -> Yardstick? {
    guard !traces.values.contains(where: \.isEmptyInMemory) else { return nil }
    return try Simulator(policy: policy, traces: traces, start: options.start).yardstick()
  }

  /// A candidate's run (or, given `baseline`, that baseline's) on a part of the traces.
  /// - Parameter window: where given, a process is feasible only where every window this long
  ///   meets its SLO.
  private func score(
    _ values: [Double?], on traces: [String: Trace], yardstick: Yardstick?, baseline: Baseline? = nil,
    window: TimeInterval? = nil
  ) -> Score? {
    guard let candidate = policy(with: values), let yardstick,
      var simulator = try? Simulator(policy: candidate, traces: traces, start: options.start)
    else { return nil }
    simulator.window = window
    // A candidate is scored by its cost and its share inside the SLO, not its percentiles.
    simulator.latencies = false
    guard let result = try? simulator.run(baseline, yardstick: yardstick) else { return nil }
    var cost = 0.0
    var attainment = 1.0
    var feasible = true
    for process in result.processes {
      // Dollars where the process has a price (each variant's, where it has variants).
      let priced =
        candidate.target(named: process.name)?.costPerHourUSD != nil || !process.variantReplicaHours.isEmpty
      cost += priced ? process.costUSD : process.replicaHours
      attainment = min(attainment, process.sloAttainment)
      if process.sloAttainment < process.slo.target || process.worstWindowAttainment < process.slo.target {
        feasible = false
      }
    }
    return Score(feasible: feasible, cost: cost, attainment: attainment)
  }
}

extension Trace {
  /// The requests arriving in [from, to), re-timed from `from`, held in memory.
  func window(from start: Double, to end: Double) throws -> Trace {
    let requests = try collect().filter { $0.arrival >= start && $0.arrival < end }.map {
      var request = $0
      request.arrival -= start
      return request
    }
    return Trace(kind: kind, start: self.start.addingTimeInterval(start), requests: requests)
  }

  /// A trace held in memory with no requests (the window of an empty stretch).
  var isEmptyInMemory: Bool {
    if case .requests(let requests) = origin, stages.isEmpty { return requests.isEmpty }
    return false
  }
}

/// A small, fast generator with a fixed sequence per seed, so a tune repeats exactly.
struct SplitMix64: RandomNumberGenerator {
  private var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// Candidates scored so far, counted from concurrent runs for the progress bar.
private final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var value = 0
  func increment() -> Int {
    lock.withLock {
      value += 1; return value
    }
  }
}
