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
    guard let first = metrics.samples.first?.time, let last = metrics.samples.last?.time else {
      throw ReplayError.noSamples
    }
    let interval = options.interval ?? policy.controller.interval
    let staleness = options.staleness ?? policy.controller.staleness
    guard interval >= 1 else { throw ReplayError.badInterval }
    let ticks = last.timeIntervalSince(first) / interval
    guard ticks <= Double(Self.maxTicks) else {
      throw ReplayError.tooManyTicks(Int(saturating: ticks), from: first, to: last)
    }
    if let gap = Self.longestGap(metrics), gap.seconds > max(3600, staleness * 10) {
      // Every tick inside it sees every signal missing: a replay that holds through it is right,
      // but the user should know the hours are empty, not quiet.
      logger.warning(
        "the recording has a gap of \(Int(gap.seconds / 60)) minutes after \(RFC3339.string(from: gap.after)): its ticks see every signal missing"
      )
    }
    for name in options.start.keys where policy.target(named: name) == nil {
      throw ReplayError.unknownProcess(name, known: policy.targets.map(\.name))
    }

    let engine = ScalingEngine(policy: policy)
    var state = EngineState()
    var replicas: [String: Int] = [:]
    for target in policy.targets {
      let recorded = metrics.samples[0].values[RecordedMetrics.replicasColumn(for: target.name)]
      replicas[target.name] = options.start[target.name] ?? recorded.map { Int($0.rounded()) } ?? target.min
    }
    let perReplica = policy.signals.compactMap { spec in
      spec.perReplicaOf.map { (signal: spec.name, process: $0) }
    }

    var accumulator = SummaryAccumulator(policy: policy, start: first)
    var cursor = -1
    var tick = 0
    var now = first
    while now <= last {
      while cursor + 1 < metrics.samples.count, metrics.samples[cursor + 1].time <= now { cursor += 1 }
      var signals: [String: Double] = [:]
      var recordedReplicas: [String: Double] = [:]
      var recordedReady: [String: Double] = [:]
      if cursor >= 0, now.timeIntervalSince(metrics.samples[cursor].time) <= staleness {
        signals = metrics.samples[cursor].values
        for target in policy.targets {
          let column = RecordedMetrics.replicasColumn(for: target.name)
          if let value = signals.removeValue(forKey: column) { recordedReplicas[target.name] = value }
          let readyColumn = RecordedMetrics.readyColumn(for: target.name)
          if let value = signals.removeValue(forKey: readyColumn) { recordedReady[target.name] = value }
        }
      }
      // The replicas the recording had still starting are still starting in ours.
      var status: [String: ReplicaStatus] = [:]
      for (name, count) in replicas {
        let starting = recordedReady[name].map { max(0, (recordedReplicas[name] ?? Double(count)) - $0) } ?? 0
        status[name] = ReplicaStatus(current: count, ready: max(0, count - Int(starting.rounded())))
      }
      // The recording ran with its own replica count: spread the same total load over ours.
      // Utilization is measured over ready replicas, so the spread is over ready ones.
      for (signal, process) in perReplica {
        guard let value = signals[signal], let recorded = recordedReady[process] ?? recordedReplicas[process],
          let ours = status[process]?.ready, ours > 0
        else { continue }
        signals[signal] = value * recorded / Double(ours)
      }
      let inputs = EngineInputs(signals: signals, replicas: status)
      let (decision, next) = engine.decide(inputs, state: consume state, now: now)
      state = next
      for event in decision.events {
        accumulator.record(event)
        try onEvent(event)
      }
      for action in decision.actions { replicas[action.process] = action.to }
      let span = min(interval, max(0, last.timeIntervalSince(now)))
      accumulator.hold(replicas, recorded: recordedReplicas, for: span, state: state, signals: signals)
      tick += 1
      now = first.addingTimeInterval(Double(tick) * interval)
    }
    logger.debug("replayed \(tick) ticks", metadata: ["samples": "\(metrics.samples.count)"])
    return accumulator.result(end: last, ticks: tick, interval: interval)
  }
}

extension Replay {
  /// The longest time between two samples in a row, and when it starts.
  static func longestGap(_ metrics: RecordedMetrics) -> (seconds: TimeInterval, after: Date)? {
    zip(metrics.samples, metrics.samples.dropFirst()).map { ($1.time.timeIntervalSince($0.time), $0.time) }
      .max { $0.0 < $1.0 }
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
