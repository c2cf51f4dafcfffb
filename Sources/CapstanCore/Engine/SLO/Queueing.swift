import Foundation

/// The queueing check: waits estimated from the mean load, for objectives whose misses are not
/// measured.
extension SLOSizer {
  /// Whether, on `replicas` replicas of `slots` each (an M/M/c queue, Erlang C), the share of
  /// requests that wait longer than each objective leaves for waiting is within what it
  /// allows.
  static func waitsWithin(
    _ objectives: [SLOSizing.ObjectiveState], replicas: Int, slots: Double, inFlight: Double,
    duration: Double,
    burstiness: Double
  ) -> Bool {
    let servers = Double(replicas) * max(slots.rounded(.down), 1)
    guard servers > inFlight else { return false }
    guard servers <= largestErlang else { return true }
    let waitChance = erlangC(servers: Int(servers), offered: inFlight)
    let concurrency = inFlight / Double(max(replicas, 1))
    for objective in objectives where objective.latency.includesWaiting {
      let serving = objective.latency == .queueWait ? 0 : (objective.fit?.upper(concurrency) ?? 0)
      let allowance = objective.bound - serving
      guard allowance > 0 else { return false }
      // Kingman: waits grow with the arrivals' variability, (ca² + cs²) / 2, with service
      // times taken as exponential (cs² = 1) and ca² as the arrivals' dispersion.
      let late = waitChance * exp(-(servers - inFlight) * allowance / (duration * (burstiness + 1) / 2))
      if late > 1 - objective.aim / 100 { return false }
    }
    return true
  }

  /// The chance an arrival waits in an M/M/c queue with `servers` servers and `offered`
  /// erlangs, from the Erlang B recursion (stable for any size).
  static func erlangC(servers: Int, offered: Double) -> Double {
    guard servers > 0 else { return 1 }
    var blocking = 1.0
    for k in 1...servers { blocking = offered * blocking / (Double(k) + offered * blocking) }
    let c = Double(servers)
    let denominator = c - offered * (1 - blocking)
    guard denominator > 0 else { return 1 }
    return min(max(c * blocking / denominator, 0), 1)
  }
}
