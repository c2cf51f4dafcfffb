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
  }

  func measure(_ quantity: SimulationSettings.Quantity) -> Double? {
    let waiting = queue.count - queueHead
    switch quantity {
    case .queueDepth: return Double(waiting)
    case .oldestWait: return waiting > 0 ? now - queue[queueHead].request.arrival : 0
    case .utilization:
      // Busy slots over every ready slot, whatever kind holds it.
      let ready = replicas.filter { !$0.draining && $0.readyAt <= now }
      guard !ready.isEmpty else { return nil }
      let busy = ready.reduce(0) { $0 + $1.inFlight.count }
      return Double(busy) / Double(ready.count * settings.slots) * 100
    case .concurrency:
      return Double(waiting + replicas.reduce(0) { $0 + $1.inFlight.count })
    case .requestRate, .tokenRate:
      var count = 0.0
      var tokens = 0.0
      for arrival in recentArrivals.reversed() where arrival.time > now - interval {
        count += 1
        tokens += arrival.tokens
      }
      return (quantity == .requestRate ? count : tokens) / interval
    case .latencyP95:
      let latencies = recentStarts.filter { $0.time > now - 60 }.map(\.latency)
      return latencies.isEmpty ? nil : percentile(latencies.sorted(), 0.95)
    case .running:
      return Double(replicas.reduce(0) { $0 + $1.inFlight.count })
    case .ttftP99: return lastMinute(\.ttft, percentile: 0.99)
    case .ttftMean: return lastMinute(\.ttft, percentile: nil)
    case .itlP99: return lastMinute(\.itl, percentile: 0.99)
    case .itlMean: return lastMinute(\.itl, percentile: nil)
    case .e2eP99: return lastMinute(\.e2e, percentile: 0.99)
    case .queueWaitP99: return lastMinute(\.wait, percentile: 0.99)
    }
  }

  /// A percentile (nil: the mean) of one latency over the requests started in the last minute,
  /// as a Prometheus query over a histogram's `rate(…[1m])` gives it; nil when none started.
  private func lastMinute(_ latency: KeyPath<Started, Double>, percentile share: Double?) -> Double? {
    var values: [Double] = []
    for start in recentStarts.reversed() {
      guard start.time > now - 60 else { break }
      values.append(start[keyPath: latency])
    }
    guard !values.isEmpty else { return nil }
    guard let share else { return values.reduce(0, +) / Double(values.count) }
    return percentile(values.sorted(), share)
  }
}
