import Foundation

/// A scale-down checked against the busiest minute of the last `SLOSizer.consolidationSpan`:
/// requests in flight then (running and waiting), over what a replica has room for.
public struct Consolidation: Sendable, Equatable {
  public var peak: Double
  /// A replica's slots, times the rounds of service the tightest bound that includes waiting
  /// leaves whole (one where it leaves less than a request's time in flight).
  public var room: Double
  public var replicas: Int
}

/// The most of a value seen in each minute, for the last `span` seconds: a scale-down is
/// checked against the busiest minute, which a smoothed load hides.
public struct RecentPeaks: Sendable, Equatable, Codable {
  public struct Minute: Sendable, Equatable, Codable {
    public var start: Date
    public var most: Double
  }

  /// Oldest first; at most one a minute, none older than the span.
  public private(set) var minutes: [Minute] = []

  /// The most minutes kept: the span's, and one being filled.
  static let mostMinutes = Int(SLOSizer.consolidationSpan / 60) + 1

  public init() {}

  /// Counts `value` at `now`, and forgets minutes that have left the span.
  mutating func add(_ value: Double, at now: Date) {
    guard value.isFinite, value >= 0 else { return }
    let value = min(value, PolicyLimits.maxMagnitude)
    if let last = minutes.last, now >= last.start, now.timeIntervalSince(last.start) < 60 {
      minutes[minutes.count - 1].most = max(last.most, value)
    } else {
      // A clock that went back starts the minutes again: none of them is later than now.
      if let last = minutes.last, now < last.start { minutes.removeAll() }
      minutes.append(Minute(start: now, most: value))
    }
    // A minute counts where it began within the span.
    let oldest = now.addingTimeInterval(-SLOSizer.consolidationSpan)
    minutes.removeAll { $0.start <= oldest }
    if minutes.count > Self.mostMinutes { minutes.removeFirst(minutes.count - Self.mostMinutes) }
  }

  /// The most counted over the span up to `now`; nil where nothing was.
  func most(at now: Date) -> Double? {
    let oldest = now.addingTimeInterval(-SLOSizer.consolidationSpan)
    return minutes.filter { $0.start > oldest && $0.start <= now }.map(\.most).max()
  }

  var isSound: Bool {
    minutes.count <= Self.mostMinutes
      && minutes.allSatisfy { $0.most.isFinite && $0.most >= 0 && $0.most <= PolicyLimits.maxMagnitude }
      && zip(minutes, minutes.dropFirst()).allSatisfy { $0.start < $1.start }
  }
}

extension SLOSizer {
  /// How far back a scale-down looks for the busiest minute: twice an interactive process's
  /// default scale-down stabilization.
  static let consolidationSpan: TimeInterval = 600
  /// No fewer replicas than the busiest minute of the last `consolidationSpan` needs: a pool
  /// sized on the smoothed load and the share missed by it is lean, and a scale-down on a
  /// quiet minute leaves the next burst a startup short (Dynamo's N/(N−1) consolidation
  /// test, on the peak). A replica has room for its slots, once for each whole request's time
  /// in flight the tightest bound that includes waiting leaves: a request that waits starts
  /// when one in service ends, and one just started ends a whole duration later.
  static func consolidate(
    _ sizing: inout SLOSizing, state: SLOState, now: Date, current: Int, duration: Double
  ) {
    guard sizing.replicas < current, let peak = state.peaks?.most(at: now), let capacity = sizing.capacity,
      capacity > 1e-9
    else { return }
    let bound = sizing.objectives.filter { $0.latency.includesWaiting }.map(\.bound).min() ?? 0
    let rounds = 1 + min((bound / max(duration, 1e-6)).rounded(.down), 1e6)
    let room = (state.fullAt ?? capacity) * rounds
    let needed = min(current, ceilCount(peak / room))
    guard needed > sizing.replicas else { return }
    sizing.beforeHold = sizing.replicas
    sizing.replicas = needed
    sizing.consolidation = Consolidation(peak: peak, room: room, replicas: needed)
  }
}
