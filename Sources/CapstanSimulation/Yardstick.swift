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

/// The search for one process's oracle, each schedule judged by simulating it on the same fleet
/// model as every run (FIFO queue, startups, drains, min and max), so "meets the SLO" is
/// measured, never assumed. It starts from schedules that are known to be good and lowers them
/// while the SLO holds:
///
/// 1. the zero-wait schedule (no request waits: the most any moment needs, a startup ahead);
/// 2. the best static pool, by bisection (more replicas never start a FIFO request later);
/// 3. the zero-wait schedule capped at a ceiling, the lowest that meets the SLO, by bisection:
///    requests at its peaks wait within the bound instead of each peak getting its replicas;
/// 4. from the cheapest of those that meets the SLO, a descent: one replica fewer over a block
///    of ticks, kept where the SLO still holds and the cost falls; blocks from half the run
///    down to one tick, then single ticks again until nothing more comes off;
/// 5. kicks: more replicas at one tick, then the single-tick descent over the others, kept where
///    it ends cheaper, so a schedule that holds replicas at one tick to save more at others is
///    found.
///
/// Steps 3 to 5 stop once the search has simulated its budget of schedules (steps 1 and 2 always
/// run in full). The oracle is the cheapest schedule that meets the SLO among all those
/// simulated, so it never costs more than the zero-wait schedule or the static pool where they
/// meet it. It is a local optimum, exact where the brute-force tests say.
struct OracleSearch {
  let simulator: Simulator
  let target: ScalingTarget
  let slo: SimulationSettings.SLO
  /// Schedules simulated so far.
  private(set) var evaluations = 0
  /// The most schedules this search simulates: `maxEvaluations`, fewer for a long trace.
  private(set) var budget = maxEvaluations

  /// The most schedules one search simulates.
  static let maxEvaluations = 400

  /// A schedule and its score: (feasible, cost, attainment) as the run measured it; the cost is
  /// replica-seconds, or for a process with variants dollar-seconds an hour (its schedules are
  /// capacity, each tick's filled cheapest first).
  private struct Scored {
    var ticks: [Int]
    var feasible: Bool
    var cost: Double
    var attainment: Double

    /// Feasible first; then the cheaper; among infeasible, the nearer to the SLO.
    func isBetter(than other: Scored) -> Bool {
      if feasible != other.feasible { return feasible }
      if feasible { return cost < other.cost }
      if attainment != other.attainment { return attainment > other.attainment }
      return cost < other.cost
    }
  }

  init(simulator: Simulator, target: ScalingTarget, slo: SimulationSettings.SLO) {
    self.simulator = simulator
    self.target = target
    self.slo = slo
  }

  /// The oracle's schedule by tick and the static pool.
  mutating func run() throws -> (schedule: [Int], pool: Int) {
    let low = target.min
    let high = target.max
    // 1. The zero-wait schedule, recorded tick by tick as a run asks for it.
    let zeroWait = try simulator.zeroWait()
    var asked: [Int] = []
    let recorded = Simulator.Driver.schedule { name, tick in
      let replicas = try zeroWait(name, tick)
      asked.append(min(max(replicas, low), high))
      return replicas
    }
    let first = try simulator.run(recorded, name: "zero-wait", onEvent: { _ in })
    guard let requests = first.processes.first?.requests, requests > 0 else { return ([low], low) }
    budget = min(Self.maxEvaluations, max(16, Simulator.searchRequests / requests))
    // The most misses the SLO allows, by the test a run is judged by (met / requests >= target).
    var allowed = 0
    while allowed < requests && Double(requests - allowed - 1) / Double(requests) >= slo.target {
      allowed += 1
    }
    var best = try score(asked, allowed: allowed)

    // 2. The fewest constant replicas that meet the SLO.
    let largest = try score(Array(repeating: high, count: asked.count), constant: true, allowed: allowed)
    var pool = high
    if largest.feasible {
      var (below, above) = (low - 1, high)
      while above - below > 1 {
        let middle = (below + above) / 2
        if try score(Array(repeating: middle, count: asked.count), constant: true, allowed: allowed).feasible
        {
          above = middle
        } else {
          below = middle
        }
      }
      pool = above
      let fixed = try score(Array(repeating: pool, count: asked.count), constant: true, allowed: allowed)
      if fixed.isBetter(than: best) { best = fixed }
    } else if largest.isBetter(than: best) {
      best = largest
    }

    // 3. The zero-wait schedule under the lowest ceiling that still meets the SLO.
    let peak = asked.max() ?? low
    if best.feasible && peak > low {
      var (below, above) = (low - 1, peak)
      while above - below > 1 && evaluations < budget {
        let middle = (below + above) / 2
        let capped = try score(asked.map { min($0, middle) }, allowed: allowed, cheaperThan: nil)
        if capped.feasible {
          above = middle
          if capped.isBetter(than: best) { best = capped }
        } else {
          below = middle
        }
      }
    }

    // 4. Lower blocks of ticks while the SLO holds.
    if best.feasible {
      best = try descend(from: best, blocks: max(1, best.ticks.count / 2), allowed: allowed)
    }

    // 5. Kicks, out of a local optimum: more replicas at one tick (each count up to max), then
    //    the other ticks lowered again; kept where the result is cheaper than the best so far.
    var kicked = 0
    var raise = 1
    while best.feasible && kicked < best.ticks.count && evaluations < budget {
      var raised = best.ticks
      guard raised[kicked] + raise <= high else {
        kicked += 1
        raise = 1
        continue
      }
      raised[kicked] += raise
      let start = try score(raised, allowed: allowed)
      let settled =
        start.feasible ? try descend(from: start, blocks: 1, allowed: allowed, keeping: kicked) : start
      if settled.feasible && settled.isBetter(than: best) {
        best = settled
        kicked = 0
        raise = 1
      } else {
        raise += 1
      }
    }
    return (best.ticks, pool)
  }

  /// Lowers blocks of `blocks` ticks by one replica, then blocks of half that, down to single
  /// ticks, keeping each change that still meets the SLO and costs less; then single ticks
  /// again until a pass changes nothing. The tick `kept` stays as it is. Stops at the budget.
  private mutating func descend(from start: Scored, blocks: Int, allowed: Int, keeping kept: Int? = nil)
    throws -> Scored
  {
    var best = start
    let count = best.ticks.count
    var size = blocks
    var improved = false
    while evaluations < budget {
      var first = 0
      while first < count && evaluations < budget {
        var lowered = best.ticks
        for tick in first..<min(first + size, count) where tick != kept {
          lowered[tick] = max(lowered[tick] - 1, target.min)
        }
        if lowered != best.ticks {
          let tried = try score(lowered, allowed: allowed, cheaperThan: best.cost)
          if tried.feasible && tried.isBetter(than: best) {
            best = tried
            improved = true
            // The same block may come down further.
            continue
          }
        }
        first += size
      }
      if size > 1 {
        size = max(1, size / 2)
      } else if !improved {
        break
      }
      if size == 1 { improved = false }
    }
    return best
  }

  /// Simulates a schedule; one that misses more than `allowed` requests, or costs `cheaperThan`
  /// or more, is cut short and scored infeasible.
  private mutating func score(
    _ ticks: [Int], constant: Bool = false, allowed: Int, cheaperThan cost: Double? = nil
  ) throws -> Scored {
    evaluations += 1
    let low = target.min
    let after = constant ? (ticks.first ?? low) : low
    let driver = Simulator.Driver.schedule { _, tick in tick < ticks.count ? ticks[tick] : after }
    // A run starts with the replicas its schedule holds at the first tick, or at min.
    let start = simulator.start == .oracle ? [target.name: ticks.first ?? low] : [:]
    let giveUp = Simulator.GiveUp(misses: allowed, cost: cost ?? .infinity)
    let result = try simulator.run(driver, name: "oracle", start: start, giveUp: giveUp, onEvent: { _ in })
    guard let process = result.processes.first, !result.cutShort else {
      return Scored(ticks: ticks, feasible: false, cost: .infinity, attainment: 0)
    }
    return Scored(
      ticks: ticks, feasible: process.sloAttainment >= slo.target,
      cost: process.searchCost,
      attainment: process.sloAttainment)
  }
}
