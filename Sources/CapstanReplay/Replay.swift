import CapstanCore
import Foundation
import Logging

/// Runs a policy's engine over recorded metrics on a virtual clock: what the policy would have
/// done. The engine is the same one the live controller runs; only the driver differs.
public struct Replay {
  public struct Options: Sendable {
    /// Tick interval; nil takes the policy's `controller.interval`.
    public var interval: TimeInterval?
    /// A sample older than this at a tick counts as missing; nil takes `controller.staleness`.
    public var staleness: TimeInterval?
    /// Starting replica counts that override the recording and the minimum.
    public var start: [String: Int] = [:]
    /// Per predictive process, history recorded before the replay (its `history: {file: ...}`):
    /// learned before the first tick; what is at or after the first sample is left out.
    public var history: [String: [(time: Date, value: Double)]] = [:]

    public init(interval: TimeInterval? = nil, staleness: TimeInterval? = nil, start: [String: Int] = [:]) {
      self.interval = interval
      self.staleness = staleness
      self.start = start
    }
  }

  /// Ten million ticks: about five years of 15-second ticks, and a bound on every replay.
  public static let maxTicks = 10_000_000

  public let policy: Policy
  public let options: Options
  let logger: Logger

  public init(policy: Policy, options: Options = Options(), logger: Logger) {
    self.policy = policy
    self.options = options
    self.logger = logger
  }

  /// Replays every tick from the first sample to the last. `onEvent` sees each audit event as it
  /// happens, for writing the audit log without holding it in memory.
  public func run(_ metrics: RecordedMetrics, onEvent: (AuditEvent) throws -> Void = { _ in }) throws
    -> ReplayResult
  {
    try run(samples: metrics.cursor, onEvent: onEvent)
  }

  /// Replays samples as they are read: memory holds the current sample and the next, whatever
  /// the recording's length. A bad row stops the replay with an error at its line.
  /// - Parameter report: given, sees every tick's replicas, signals and state for the HTML
  ///   report (the events go to it through `onEvent`, as the caller chooses).
  /// - Parameter onBudgetDay: sees each `budgets:` budget's day as it ends, and at the end the
  ///   day each was in, as `capstan run` writes them to `STATE_DIR/budgets/`.
  public func run(
    samples source: some RecordedSamples, keepEvents: Bool = true, report: ReportRecorder? = nil,
    onBudgetDay: (BudgetDayReport) throws -> Void = { _ in },
    onEvent: (AuditEvent) throws -> Void = { _ in }
  ) throws -> ReplayResult {
    var source = source
    // The engine ticks at the replay's interval: what a tick stands for follows it.
    var ticking = policy
    ticking.controller.interval = options.interval ?? policy.controller.interval
    // Each row is read straight into the positions a tick uses: the engine's signals, then each
    // process's recorded replicas and ready replicas.
    let engine = ScalingEngine(policy: ticking)
    let order = engine.signalOrder
    let targets = policy.targets
    let recordedColumns = targets.flatMap {
      [RecordedMetrics.replicasColumn(for: $0.name), RecordedMetrics.readyColumn(for: $0.name)]
    }
    let wanted = order + recordedColumns
    func recordedReplicasPosition(_ target: Int) -> Int { order.count + 2 * target }
    guard let firstSample = try source.next(projectedOnto: wanted) else { throw ReplayError.noSamples }
    let first = firstSample.time
    let interval = ticking.controller.interval
    let staleness = options.staleness ?? policy.controller.staleness
    guard interval >= 1 else { throw ReplayError.badInterval }
    for name in options.start.keys where policy.target(named: name) == nil {
      throw ReplayError.unknownProcess(name, known: policy.targets.map(\.name))
    }
    let lastAllowed = first.addingTimeInterval(Double(Self.maxTicks) * interval)
    // The longest stretch without a sample, reported at the end.
    var longestGap: ReplayResult.Gap?
    func read() throws -> RecordedMetrics.Row? {
      guard let sample = try source.next(projectedOnto: wanted) else { return nil }
      guard sample.time <= lastAllowed else {
        throw ReplayError.tooManyTicks(
          Int(saturating: sample.time.timeIntervalSince(first) / interval), from: first, to: sample.time)
      }
      return sample
    }

    var state = EngineState()
    var budgetDays: [BudgetDayReport] = []
    for (name, samples) in options.history { engine.learn(samples, for: name, before: first, state: &state) }
    // The tick's inputs are kept by position (the engine's signal order, the policy's targets)
    // and updated in place: a tick hashes each signal and recorded column once, and builds no
    // dictionary.
    var indexed = engine.emptyInputs()
    var counts = targets.enumerated().map { index, target in
      let recorded = firstSample.values[recordedReplicasPosition(index)]
      return options.start[target.name] ?? recorded.map { Int($0.rounded()) } ?? target.min
    }
    // Signals measured per replica: rescaled from the recording's count to ours.
    let perReplica = policy.signals.compactMap { spec -> (position: Int, target: Int)? in
      guard let owner = spec.perReplicaOf, let position = engine.position(ofSignal: spec.name),
        let target = engine.position(ofTarget: owner)
      else { return nil }
      return (position, target)
    }
    var recordedReplicas = [Double?](repeating: nil, count: targets.count)
    var recordedReady = [Double?](repeating: nil, count: targets.count)

    var accumulator = SummaryAccumulator(
      engine: engine, start: first, keepEvents: keepEvents)
    // The latest sample at or before the tick, and the samples read ahead of it: up to the first
    // one at least an interval past the tick, so the tick knows whether the recording ends
    // within its interval. Memory holds the samples of one interval, whatever the length.
    var current: RecordedMetrics.Row?
    var ahead: [RecordedMetrics.Row] = [firstSample]
    var aheadHead = 0
    var exhausted = false
    var samples = 0
    var tick = 0
    var now = first
    while true {
      while !exhausted, (ahead.last?.time ?? now) < now.addingTimeInterval(interval) {
        if let sample = try read() { ahead.append(sample) } else { exhausted = true }
      }
      while aheadHead < ahead.count, ahead[aheadHead].time <= now {
        // Moved out of its slot, which keeps only its time from here on, so the row's storage
        // keeps one owner and no reference count is taken.
        var next = RecordedMetrics.Row(time: ahead[aheadHead].time, values: [])
        swap(&next, &ahead[aheadHead])
        if let current {
          let gap = next.time.timeIntervalSince(current.time)
          if gap > (longestGap?.seconds ?? 0) {
            longestGap = ReplayResult.Gap(seconds: gap, after: current.time)
          }
          // Done with: its storage holds the next row read instead of a new allocation.
          source.reuse(current)
        }
        current = next
        samples += 1
        aheadHead += 1
      }
      if aheadHead > 64 && aheadHead * 2 > ahead.count {
        ahead.removeFirst(aheadHead)
        aheadHead = 0
      }
      let last = exhausted ? (aheadHead < ahead.count ? ahead[ahead.count - 1].time : current?.time) : nil
      // Past the last sample: done.
      if let last, now > last { break }
      if let current, now.timeIntervalSince(current.time) <= staleness {
        // A value that is not a load (below 0, past 1e15) is missing, as a live read of it fails.
        for position in order.indices {
          indexed.signals[position] = current.values[position].flatMap {
            $0 >= 0 && $0 <= PolicyLimits.maxMagnitude ? $0 : nil
          }
        }
        for index in targets.indices {
          recordedReplicas[index] = current.values[recordedReplicasPosition(index)]
          recordedReady[index] = current.values[recordedReplicasPosition(index) + 1]
        }
      } else {
        for position in order.indices { indexed.signals[position] = nil }
        for index in targets.indices {
          recordedReplicas[index] = nil
          recordedReady[index] = nil
        }
      }
      // The replicas the recording had still starting are still starting in ours.
      for (index, count) in counts.enumerated() {
        let starting =
          recordedReady[index].map { max(0, (recordedReplicas[index] ?? Double(count)) - $0) } ?? 0
        indexed.replicas[index] = ReplicaStatus(
          current: count, ready: max(0, count - Int(starting.rounded())))
      }
      // The recording ran with its own replica count: spread the same total load over ours.
      // Utilization is measured over ready replicas, so the spread is over ready ones.
      for (position, index) in perReplica {
        guard let value = indexed.signals[position],
          let recorded = recordedReady[index] ?? recordedReplicas[index],
          let ours = indexed.replicas[index]?.ready, ours > 0
        else { continue }
        indexed.signals[position] = value * recorded / Double(ours)
      }
      let (decision, next) = engine.decide(indexed, state: consume state, now: now)
      state = next
      for event in decision.events {
        accumulator.record(event)
        try onEvent(event)
        if event.kind == .budgetReset, let name = event.namedBudget?.name,
          let budget = policy.budgets.budget(named: name), let ledger = state.budgetTree[name],
          let ended = ledger.previousDay
        {
          let report = BudgetDayReport(budget, day: ended, ledger: ledger, closed: true)
          budgetDays.append(report)
          try onBudgetDay(report)
        }
      }
      for action in decision.actions {
        if let index = engine.position(ofTarget: action.process) { counts[index] = action.to }
      }
      // The recording ends at its last sample: the tick before it holds only up to there.
      let span = last.map { min(interval, max(0, $0.timeIntervalSince(now))) } ?? interval
      accumulator.hold(
        counts, recorded: recordedReplicas, for: span, state: state, engine: engine, signals: indexed.signals)
      if let report {
        // The report takes names; only a run that writes one builds them.
        var byName: [String: Double] = [:]
        for (position, value) in indexed.signals.enumerated() { byName[order[position]] = value }
        var recordedByName: [String: Double] = [:]
        for (index, value) in recordedReplicas.enumerated() { recordedByName[targets[index].name] = value }
        report.tick(
          run: "replay", time: now,
          replicas: Dictionary(uniqueKeysWithValues: zip(targets.map(\.name), counts)),
          recorded: recordedByName, signals: byName, state: state)
      }
      tick += 1
      now = first.addingTimeInterval(Double(tick) * interval)
    }
    if let gap = longestGap, gap.seconds > max(3600, staleness * 10) {
      // Every tick inside it saw every signal missing: a replay that held through it is right,
      // but the user should know the hours were empty, not quiet.
      logger.warning(
        "the recording has a gap of \(Int(gap.seconds / 60)) minutes after \(RFC3339.string(from: gap.after)): its ticks see every signal missing"
      )
    }
    for budget in policy.budgets.budgets {
      guard let ledger = state.budgetTree[budget.name], let day = ledger.day else { continue }
      let report = BudgetDayReport(budget, day: day, ledger: ledger, closed: false)
      budgetDays.append(report)
      try onBudgetDay(report)
    }
    logger.debug("replayed \(tick) ticks", metadata: ["samples": "\(samples)"])
    var result = accumulator.result(end: current?.time ?? first, ticks: tick, interval: interval)
    result.longestGap = longestGap
    result.budgetDays = budgetDays
    return result
  }
}

public enum ReplayError: Error, CustomStringConvertible, Equatable {
  case noSamples
  case badInterval
  case tooManyTicks(Int, from: Date, to: Date)
  case unknownProcess(String, known: [String])

  public var description: String {
    switch self {
    case .noSamples: return "the metrics file has no samples: it needs a header and at least one row"
    case .badInterval: return "the interval must be at least 1s"
    case .tooManyTicks(let ticks, let from, let to):
      return
        "the recording runs from \(RFC3339.string(from: from)) to \(RFC3339.string(from: to)): \(ticks) ticks, more than the \(Replay.maxTicks) a replay takes; check for a stray row, or pass a longer --interval"
    case .unknownProcess(let name, let known):
      return
        "--start names '\(name)', which the policy does not scale (it scales: \(known.joined(separator: ", ")))"
    }
  }
}
