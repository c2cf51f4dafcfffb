import CapstanCore
import Foundation

/// What a fleet's scraper sees: the quantities `simulation.signals` maps to the policy's
/// signals.
extension Fleet {
  /// One request's start, and the latencies it will have.
  struct Started {
    var time: Double
    /// The SLO's latency.
    var latency: Double
    var wait: Double
    var ttft: Double
    var itl: Double
    var e2e: Double
    /// The kind of replica it started on.
    var kind: Int
  }

  /// - Parameter kind: measure over the replicas of this kind alone (a quantity that
  ///   `isPerVariant`); nil: over the whole fleet.
  func measure(_ quantity: SimulationSettings.Quantity, kind: Int? = nil) -> Double? {
    let waiting = queue.count - queueHead
    switch quantity {
    case .queueDepth: return Double(waiting)
    case .oldestWait: return waiting > 0 ? now - queue[queueHead].request.arrival : 0
    case .utilization:
      // Busy slots over every ready slot, whatever kind holds it.
      let ready = replicas.filter { !$0.draining && $0.readyAt <= now && (kind == nil || $0.kind == kind) }
      guard !ready.isEmpty else { return nil }
      let busy = ready.reduce(0) { $0 + $1.busy }
      return Double(busy) / Double(ready.count * settings.slots) * 100
    case .concurrency:
      return Double(waiting + replicas.reduce(0) { $0 + $1.busy })
    case .requestRate where kind != nil:
      // A kind's share of the load is what started on it: the queue is the fleet's.
      var count = 0.0
      for start in recentStarts.reversed() {
        guard start.time > now - interval else { break }
        if start.kind == kind { count += 1 }
      }
      return count / interval
    case .requestRate, .tokenRate:
      var count = 0.0
      var tokens = 0.0
      for arrival in recentArrivals.reversed() where arrival.time > now - interval {
        count += 1
        tokens += arrival.tokens
      }
      return (quantity == .requestRate ? count : tokens) / interval
    case .latencyP95: return lastMinute(\.latency, percentile: 0.95, kind: kind)
    case .running:
      return Double(replicas.reduce(0) { $0 + (kind == nil || $1.kind == kind ? $1.busy : 0) })
    case .ttftP99: return lastMinute(\.ttft, percentile: 0.99, kind: kind)
    case .ttftMean: return lastMinute(\.ttft, percentile: nil, kind: kind)
    case .itlP99: return lastMinute(\.itl, percentile: 0.99, kind: kind)
    case .itlMean: return lastMinute(\.itl, percentile: nil, kind: kind)
    case .e2eP99: return lastMinute(\.e2e, percentile: 0.99, kind: kind)
    case .queueWaitP99: return lastMinute(\.wait, percentile: 0.99, kind: kind)
    case .sloWithin:
      var started = 0.0
      var within = 0.0
      for start in recentStarts.reversed() {
        guard start.time > now - 60 else { break }
        guard kind == nil || start.kind == kind else { continue }
        started += 1
        if start.latency <= settings.slo.bound { within += 1 }
      }
      return started > 0 ? within / started : nil
    }
  }

  /// A percentile (nil: the mean) of one latency over the requests started in the last minute
  /// (on replicas of `kind`, where given), as a Prometheus query over a histogram's
  /// `rate(…[1m])` gives it; nil when none started.
  private func lastMinute(_ latency: KeyPath<Started, Double>, percentile share: Double?, kind: Int?)
    -> Double?
  {
    var values: [Double] = []
    for start in recentStarts.reversed() {
      guard start.time > now - 60 else { break }
      if kind == nil || start.kind == kind { values.append(start[keyPath: latency]) }
    }
    guard !values.isEmpty else { return nil }
    guard let share else { return values.reduce(0, +) / Double(values.count) }
    return percentile(values.sorted(), share)
  }
}
