import CapstanCore
import Foundation

/// A series for drawing: per bucket of time, the lowest, highest and last value. When the
/// buckets pass their limit, neighbours merge and the width doubles, so a year costs what a
/// day does. Only drawing reads these; every number in a report comes from the run's summary.
public struct DrawnSeries: Sendable {
  public struct Bucket: Sendable {
    public var start: Double
    public var low: Double
    public var high: Double
    public var last: Double
  }

  public private(set) var buckets: [Bucket] = []
  /// Seconds a bucket spans: the first value's spacing at first, doubled at each merge.
  public private(set) var width: Double
  let origin: Double
  let limit: Int

  init(origin: Double, width: Double, limit: Int = 1500) {
    self.origin = origin
    self.width = max(width, 1)
    self.limit = limit
  }

  mutating func add(_ time: Double, _ value: Double) {
    guard value.isFinite else { return }
    let start = origin + ((time - origin) / width).rounded(.down) * width
    if let last = buckets.indices.last, buckets[last].start == start {
      buckets[last].low = min(buckets[last].low, value)
      buckets[last].high = max(buckets[last].high, value)
      buckets[last].last = value
      return
    }
    buckets.append(Bucket(start: start, low: value, high: value, last: value))
    if buckets.count > limit { merge() }
  }

  private mutating func merge() {
    width *= 2
    var merged: [Bucket] = []
    merged.reserveCapacity(buckets.count / 2 + 1)
    for bucket in buckets {
      let start = origin + ((bucket.start - origin) / width).rounded(.down) * width
      if let last = merged.indices.last, merged[last].start == start {
        merged[last].low = min(merged[last].low, bucket.low)
        merged[last].high = max(merged[last].high, bucket.high)
        merged[last].last = bucket.last
      } else {
        merged.append(Bucket(start: start, low: bucket.low, high: bucket.high, last: bucket.last))
      }
    }
    buckets = merged
  }

  var highest: Double { buckets.map(\.high).max() ?? 0 }
}

/// What an HTML report draws, gathered tick by tick while a replay or a simulation runs: per
/// run and process the replicas; for the first run (the policy's) also the driving signal, its
/// target, the budget's spend, and every record worth a marker.
public final class ReportRecorder {
  public struct Marker: Sendable {
    public var time: Double
    public var kind: AuditEventKind
    public var to: Int?
    public var text: String
  }

  public struct ProcessDrawing: Sendable {
    public var replicas: [String: DrawnSeries] = [:]
    /// The replicas the recording ran (replay), for comparison.
    public var recorded: DrawnSeries?
    public var signal: DrawnSeries?
    /// The signal's target at each tick (a total for an average-value target: target × replicas).
    public var target: DrawnSeries?
    public var spend: DrawnSeries?
    /// A simulation's load: requests arrived a second over the last tick (the same for every run,
    /// drawn from the first), and per run the requests waiting and the SLO's latency (its p95
    /// over requests started in the last minute) against its bound.
    public var arrivals: DrawnSeries?
    public var queue: [String: DrawnSeries] = [:]
    public var latency: [String: DrawnSeries] = [:]
    public var slo: (name: String, bound: Double)?
    public var markers: [Marker] = []
    /// Records past `markerLimit`, counted but not drawn.
    public var markersLeftOut = 0
  }

  /// Markers drawn per process; more are counted and said to be left out.
  public static let markerLimit = 20_000

  public let policy: Policy
  /// The runs in drawing order; the first is the policy's.
  public private(set) var runs: [String] = []
  public private(set) var processes: [String: ProcessDrawing] = [:]
  public private(set) var start: Double?
  public private(set) var end: Double?
  let interval: TimeInterval

  public init(policy: Policy, interval: TimeInterval? = nil) {
    self.policy = policy
    self.interval = interval ?? policy.controller.interval
  }

  /// The metric a process's panel draws: its tracking metric, or its scale-up rule's first.
  public static func drivingSignal(_ target: ScalingTarget) -> String? {
    target.tracking?.metric ?? target.up.rule?.conditions.first?.metric ?? target.metric
  }

  public func tick(
    run: String, time: Date, replicas: [String: Int], recorded: [String: Double] = [:],
    signals: [String: Double], state: EngineState?
  ) {
    let seconds = time.timeIntervalSince1970
    if !runs.contains(run) { runs.append(run) }
    start = min(start ?? seconds, seconds)
    end = max(end ?? seconds, seconds + interval)
    let primary = run == runs[0]
    for target in policy.targets {
      guard let count = replicas[target.name] else { continue }
      var drawing = processes[target.name] ?? ProcessDrawing()
      func series(_ existing: DrawnSeries?) -> DrawnSeries {
        existing ?? DrawnSeries(origin: seconds, width: interval)
      }
      drawing.replicas[run] = series(drawing.replicas[run])
      drawing.replicas[run]?.add(seconds, Double(count))
      if primary {
        if let value = recorded[target.name] {
          drawing.recorded = series(drawing.recorded)
          drawing.recorded?.add(seconds, value)
        }
        if let name = Self.drivingSignal(target), let value = signals[name] {
          drawing.signal = series(drawing.signal)
          drawing.signal?.add(seconds, value)
        }
        if let tracking = target.tracking {
          drawing.target = series(drawing.target)
          drawing.target?.add(
            seconds, tracking.kind == .averageValue ? tracking.target * Double(count) : tracking.target)
        }
        if let ledger = state?.budgets[target.name] {
          drawing.spend = series(drawing.spend)
          drawing.spend?.add(seconds, ledger.spentUSD)
        }
      }
      processes[target.name] = drawing
    }
  }

  /// What a simulated fleet measured at a tick: its arrivals, its queue, and the SLO's latency
  /// (nil when no request started in the last minute) with the SLO's name and bound.
  public func load(
    run: String, time: Date, process: String, arrivals: Double, queue: Double, latency: Double?,
    slo: (name: String, bound: Double)
  ) {
    guard policy.target(named: process) != nil else { return }
    let seconds = time.timeIntervalSince1970
    if !runs.contains(run) { runs.append(run) }
    var drawing = processes[process] ?? ProcessDrawing()
    func series(_ existing: DrawnSeries?) -> DrawnSeries {
      existing ?? DrawnSeries(origin: seconds, width: interval)
    }
    if run == runs[0] {
      drawing.arrivals = series(drawing.arrivals)
      drawing.arrivals?.add(seconds, arrivals)
    }
    drawing.queue[run] = series(drawing.queue[run])
    drawing.queue[run]?.add(seconds, queue)
    if let latency {
      drawing.latency[run] = series(drawing.latency[run])
      drawing.latency[run]?.add(seconds, latency)
    }
    drawing.slo = slo
    processes[process] = drawing
  }

  /// Scale actions, blocked decisions, budget alerts and freezes, outages and the predictive
  /// floor's changes of state: each a marker on the process's panel.
  public func event(_ event: AuditEvent) {
    guard policy.target(named: event.process) != nil else { return }
    var drawing = processes[event.process] ?? ProcessDrawing()
    if drawing.markers.count < Self.markerLimit {
      drawing.markers.append(
        Marker(
          time: event.time.timeIntervalSince1970, kind: event.kind, to: event.to,
          text:
            "\(RFC3339.string(from: event.time)) \(event.kind.rawValue) (\(event.reason.rawValue)): \(event.detail)"
        ))
    } else {
      drawing.markersLeftOut += 1
    }
    processes[event.process] = drawing
  }
}
