import CapstanCore
import Foundation

/// What every run is measured against, per traced process: the oracle, the cheapest schedule
/// found with full knowledge of the trace that still meets the SLO, and the best static pool,
/// the fewest constant replicas that meet it. Found once per simulation and shared by its runs.
public struct Yardstick: Sendable, Equatable {
  /// Per process: the oracle's replicas by tick from the first (after the last, `min`).
  public var oracle: [String: [Int]]
  /// Per process: the fewest constant replicas that meet the SLO (`max` where none does).
  public var staticPool: [String: Int]
}

extension Simulator {
  /// About how many requests one process's search simulates in all, so a long trace is searched
  /// in bounded time: its budget is this over the trace's requests, at least 16 and at most
  /// `OracleSearch.maxEvaluations` schedules.
  public static let searchRequests = 12_000_000
  /// About how many more requests a search whose budget would not fit its windowed step (a
  /// long trace's) may simulate for that step and what follows it.
  public static let windowedRequests = 100_000_000

  /// Searches every traced process's oracle and static pool, each on its own (under a schedule,
  /// the processes do not touch each other), runs starting as `start` says.
  public func yardstick() throws -> Yardstick {
    var found = Yardstick(oracle: [:], staticPool: [:])
    for name in traces.keys.sorted() {
      guard let trace = traces[name], var target = policy.simulatedProcess(named: name),
        let settings = target.simulation
      else { continue }
      // A process with variants is searched in steps of its smallest variant's capacity.
      if let kinds = kinds(of: name) {
        (target.min, target.max) = Self.stepBounds(of: target, kinds: kinds)
      }
      // Every schedule reads the same requests: held in memory, they are parsed once.
      let held = try trace.inMemory()
      let alone = try Simulator(policy: policy, traces: [name: held], start: start)
      var search = OracleSearch(simulator: alone, target: target, slo: settings.slo)
      let (schedule, pool) = try search.run()
      found.oracle[name] = schedule
      found.staticPool[name] = pool
    }
    return found
  }
}
