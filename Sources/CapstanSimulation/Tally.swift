import CapstanCore
import Foundation

/// A run's score for one process, kept as requests end, in memory that does not grow with the
/// trace: counts, a latency histogram, and the minutes still open.
struct Tally {
  let slo: SimulationSettings.SLO
  private(set) var requests = 0
  private(set) var failed = 0
  private(set) var met = 0
  /// Requests whose fate is known and missed the SLO: served too late, or failed.
  private(set) var misses = 0
  /// The trace's service time on one slot.
  private(set) var workSeconds = 0.0
  private(set) var latencies = LatencyHistogram()
  /// Whether `latencies` records each request's; without, every percentile reads 0.
  let keepsLatencies: Bool
  private(set) var missedMinutes = 0
  /// Per minute of arrival, from `firstMinute`: requests met, arrived, and still open.
  private var minutes: [(met: Int, all: Int, open: Int)] = []
  private var firstMinute = 0
  /// Minutes a scoring window spans, where the run scores windows too.
  let windowMinutes: Int?
  /// Per window of arrival, from the first: requests met and arrived.
  private(set) var windows: [(met: Int, all: Int)] = []

  init(slo: SimulationSettings.SLO, windowMinutes: Int? = nil, keepsLatencies: Bool = true) {
    self.slo = slo
    self.keepsLatencies = keepsLatencies
    self.windowMinutes = windowMinutes.map { max($0, 1) }
  }

  /// The lowest share inside the SLO over the windows with requests (the whole run's share
  /// where there are no windows).
  var worstWindowAttainment: Double {
    let shares = windows.filter { $0.all > 0 }.map { Double($0.met) / Double($0.all) }
    return shares.min() ?? (requests > 0 ? Double(met) / Double(requests) : 1)
  }

  mutating func arrive(minute: Int, work: Double) {
    requests += 1
    workSeconds += work
    if minutes.isEmpty { firstMinute = minute }
    if firstArrivalMinute == nil { firstArrivalMinute = minute }
    while firstMinute + minutes.count <= minute { minutes.append((0, 0, 0)) }
    minutes[minute - firstMinute].all += 1
    minutes[minute - firstMinute].open += 1
    if let window = window(of: minute) {
      while windows.count <= window { windows.append((0, 0)) }
      windows[window].all += 1
    }
  }

  private func window(of minute: Int) -> Int? {
    windowMinutes.map { max(minute - (firstArrivalMinute ?? 0), 0) / $0 }
  }

  /// The first arrival's minute: windows count from it.
  private(set) var firstArrivalMinute: Int?

  mutating func served(minute: Int, latency: Double) {
    if keepsLatencies { latencies.record(latency) }
    let ok = latency <= slo.bound
    if ok { met += 1 } else { misses += 1 }
    end(minute: minute, met: ok)
  }

  mutating func failed(minute: Int) {
    failed += 1
    misses += 1
    end(minute: minute, met: false)
  }

  private mutating func end(minute: Int, met: Bool) {
    let index = minute - firstMinute
    guard minutes.indices.contains(index) else { return }
    minutes[index].open -= 1
    if met {
      minutes[index].met += 1
      if let window = window(of: minute), windows.indices.contains(window) { windows[window].met += 1 }
    }
  }

  /// Scores the minutes before `minute` with nothing open: no request of theirs can change.
  mutating func close(minutesBefore minute: Int) {
    var closed = 0
    while closed < minutes.count && firstMinute + closed < minute && minutes[closed].open == 0 {
      let counts = minutes[closed]
      if counts.all > 0 && Double(counts.met) < slo.target * Double(counts.all) { missedMinutes += 1 }
      closed += 1
    }
    guard closed > 0 else { return }
    minutes.removeFirst(closed)
    firstMinute += closed
  }
}

/// Latencies in logarithmic buckets 0.01% wide, each keeping its count and the largest latency
/// it holds, so a percentile is a measured latency within 0.01% of the exact one, in memory that
/// does not grow with the number of requests.
struct LatencyHistogram {
  private struct Bucket {
    var count: Int
    var largest: Double
  }
  private var buckets: [Int: Bucket] = [:]
  private(set) var count = 0
  private static let width = log1p(1e-4)

  mutating func record(_ latency: Double) {
    count += 1
    let key = latency > 0 ? Int(saturating: (log(latency) / Self.width).rounded(.down)) : Int.min
    let bucket = buckets[key] ?? Bucket(count: 0, largest: latency)
    buckets[key] = Bucket(count: bucket.count + 1, largest: max(bucket.largest, latency))
  }

  /// The latencies at each quantile by the nearest-rank method (0 with none recorded), in one
  /// pass over the buckets in order.
  func percentiles(_ quantiles: [Double]) -> [Double] {
    guard count > 0 else { return quantiles.map { _ in 0 } }
    let ranks = quantiles.map { min(max(Int(($0 * Double(count)).rounded(.up)) - 1, 0), count - 1) }
    var found = quantiles.map { _ in 0.0 }
    var below = 0
    for bucket in buckets.sorted(by: { $0.key < $1.key }).map(\.value) {
      let before = below
      below += bucket.count
      for (index, rank) in ranks.enumerated() where before <= rank && rank < below {
        found[index] = bucket.largest
      }
    }
    return found
  }
}

/// The value at quantile `q` of sorted values, by the nearest-rank method.
func percentile(_ sorted: [Double], _ q: Double) -> Double {
  guard !sorted.isEmpty else { return 0 }
  let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
  return sorted[min(max(rank, 0), sorted.count - 1)]
}
