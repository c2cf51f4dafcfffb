import CapstanCore
import Foundation

/// The search for one process's oracle, each schedule judged by simulating it on the same fleet
/// model as every run (FIFO queue, startups, drains, min and max), so "meets the SLO" is
/// measured, never assumed. It starts from schedules that are known to be good and lowers them
/// while the SLO holds:
///
/// 1. the zero-wait schedule (no request waits: the most any moment needs, a startup ahead);
/// 2. the best static pool, by bisection (more replicas never start a FIFO request later);
/// 3. the zero-wait schedule capped at a ceiling, the lowest that meets the SLO, by bisection:
///    requests at its peaks wait within the bound instead of each peak getting its replicas;
/// 4. window by window: each window of five minutes takes the count it needs, the counts chosen
///    together so the misses the SLO allows fall where they save most (`windowed`);
/// 5. from the cheapest of those that meets the SLO, a descent: one replica fewer over a block
///    of ticks, kept where the SLO still holds and the cost falls; blocks from half the run
///    down to one tick, then single ticks again until nothing more comes off; then the same
///    from the second cheapest start, while the budget lasts;
/// 6. kicks: more replicas at one tick, then the single-tick descent over the others, kept where
///    it ends cheaper, so a schedule that holds replicas at one tick to save more at others is
///    found.
///
/// Steps 3 to 6 stop once the search has simulated its budget of schedules (steps 1 and 2 always
/// run in full); a budget too small for step 4's runs is raised to fit them and what follows,
/// within `Simulator.windowedRequests`. The oracle is the cheapest schedule that meets the SLO
/// among all those simulated, so it never costs more than the zero-wait schedule or the static
/// pool where they meet it. It is a local optimum, exact where the brute-force tests say.
struct OracleSearch {
  /// Runs without latencies: a schedule is scored by its cost and its share inside the SLO.
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

  /// The most schedules this search may simulate, before the trace's length lowers it.
  let most: Int

  /// Requests the search simulates, about, before and for its windowed step.
  let requestBudget: (search: Int, windowed: Int)

  init(
    simulator: Simulator, target: ScalingTarget, slo: SimulationSettings.SLO, most: Int = maxEvaluations,
    requestBudget: (search: Int, windowed: Int) = (Simulator.searchRequests, Simulator.windowedRequests)
  ) {
    var scoring = simulator
    scoring.latencies = false
    self.simulator = scoring
    self.requestBudget = requestBudget
    self.target = target
    self.slo = slo
    self.most = most
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
    budget = min(most, max(16, requestBudget.search / requests))
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

    // 4. Window by window: the count each window needs, chosen for the schedule as a whole, from
    //    constant runs and from capped ones.
    // They close most of the gap to the best schedule, so a search whose budget would not fit
    // them (a long trace's) is given as many more as they and what follows them take, up to
    // `most` and to `requestBudget.windowed` requests simulated for them.
    let windowRuns = 2 * (peak - low + 1)
    let extra = windowRuns + Self.afterWindows
    if best.feasible, peak > low, evaluations + windowRuns >= budget,
      extra <= requestBudget.windowed / requests
    {
      budget = min(most, budget + extra)
    }
    var other: Scored?
    for capped in [false, true] where best.feasible {
      guard let found = try windowed(asked: asked, allowed: allowed, capped: capped) else { continue }
      if found.isBetter(than: best) {
        if other.map({ best.isBetter(than: $0) }) ?? true { other = best }
        best = found
      } else if other.map({ found.isBetter(than: $0) }) ?? true {
        other = found
      }
    }

    // 5. Lower blocks of ticks while the SLO holds, from the cheaper start, then from the other
    //    while the budget lasts: each descent ends in its own local optimum.
    if best.feasible {
      best = try descend(from: best, blocks: max(1, best.ticks.count / 2), allowed: allowed)
    }
    if let other, evaluations < budget {
      let lowered = try descend(from: other, blocks: max(1, other.ticks.count / 2), allowed: allowed)
      if lowered.isBetter(than: best) { best = lowered }
    }

    // 6. Kicks, out of a local optimum: more replicas at one tick (each count up to max), then
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

  /// Schedules a budget raised for the windowed step (4) leaves for what follows it: the
  /// schedules it tries whole, and the descent.
  static let afterWindows = 16

  /// Minutes a window of the windowed schedule spans.
  static let windowMinutes = 5

  /// A schedule that spends the misses the SLO allows where they save the most. Each count from
  /// `min` to the zero-wait schedule's peak is simulated once, as a constant pool or (`capped`)
  /// as the zero-wait schedule (`asked`) under that ceiling, scored window by window; then, for
  /// a price on a miss, each window takes the count that costs least with its misses priced in,
  /// the price the lowest whose windows miss no more than allowed in all (a Lagrangian
  /// relaxation of the choice of one count per window). A window's misses in those runs are
  /// partly the queue the windows before it left, which the chosen schedule changes, so it is
  /// simulated whole and the misses it may spend lowered until it meets the SLO. Nil where it
  /// never does, or where the runs would not fit in what is left of the search's budget.
  private mutating func windowed(asked: [Int], allowed: Int, capped: Bool) throws -> Scored? {
    let low = target.min
    let peak = asked.max() ?? low
    guard peak > low, evaluations + peak - low + 1 < budget, !asked.isEmpty else { return nil }
    let interval = simulator.policy.controller.interval
    let windowSeconds = Double(Self.windowMinutes * 60)
    var scored = simulator
    scored.window = windowSeconds
    let startup = (simulator.kinds(of: target.name) ?? []).compactMap { $0.target.variant?.startup }
      .reduce(target.simulation?.startup ?? 0, max)
    // Each count's run is independent of the others': they run at once, on every core, and
    // are read back in order, so the search is the same on any machine.
    let ceilings = Array(low...peak)
    let runs = ConcurrentResults<Result<ProcessResult?, Error>>(count: ceilings.count)
    let (name, warm, windowedRuns) = (target.name, simulator.start == .oracle, scored)
    DispatchQueue.concurrentPerform(iterations: ceilings.count) { index in
      let ticks = asked.map { capped ? min($0, ceilings[index]) : ceilings[index] }
      runs.set(
        index,
        Result {
          try windowedRuns.run(
            .schedule { _, tick in tick < ticks.count ? ticks[tick] : low }, name: "oracle",
            start: warm ? [name: ticks[0]] : [:], onEvent: { _ in }
          ).processes.first
        })
    }
    evaluations += ceilings.count
    var misses: [[Int]] = []
    var first = 0
    for index in ceilings.indices {
      guard let process = try runs.get(index)?.get() else { return nil }
      misses.append(process.windowMisses)
      first = process.firstArrivalMinute ?? 0
    }
    // What holding a count for a tick costs, in the search's units: replicas, or for a process
    // with variants the dollars an hour of the cheapest fill of that many steps.
    let kinds = simulator.kinds(of: target.name)
    func rate(_ count: Int) -> Double {
      guard let kinds else { return Double(count) }
      let counts = Simulator.mix(Double(count) * Simulator.step(of: kinds), of: kinds, in: simulator.policy)
      return zip(kinds, counts).reduce(0) { $0 + $1.0.weight * Double($1.1) }
    }
    let windows = misses.map(\.count).max() ?? 0
    guard windows > 0 else { return nil }
    // A tick's window: that of the arrivals its replicas serve once started, a startup later.
    func window(of tick: Int) -> Int {
      let minute = Int((Double(tick) * interval + startup) / 60)
      return min(max((minute - first) / Self.windowMinutes, 0), windows - 1)
    }
    var costs = Array(repeating: Array(repeating: 0.0, count: misses.count), count: windows)
    for (tick, wanted) in asked.enumerated() {
      for option in misses.indices {
        costs[window(of: tick)][option] += rate(capped ? min(wanted, low + option) : low + option)
      }
    }
    func missed(_ option: Int, _ window: Int) -> Int {
      window < misses[option].count ? misses[option][window] : 0
    }
    func choose(_ price: Double) -> (options: [Int], misses: Int) {
      var options: [Int] = []
      var total = 0
      for window in 0..<windows {
        var chosen = misses.count - 1
        for option in misses.indices
        where costs[window][option] + price * Double(missed(option, window))
          < costs[window][chosen] + price * Double(missed(chosen, window))
        {
          chosen = option
        }
        options.append(chosen)
        total += missed(chosen, window)
      }
      return (options, total)
    }
    var found: Scored?
    for share in [1.0, 0.8, 0.6, 0.4, 0.2, 0] where evaluations < budget {
      let spend = Int(Double(allowed) * share)
      var (cheap, dear) = (0.0, 1.0)
      var rounds = 0
      while choose(dear).misses > spend && rounds < 60 {
        dear *= 4
        rounds += 1
      }
      guard choose(dear).misses <= spend else { continue }
      for _ in 0..<60 {
        let middle = (cheap + dear) / 2
        if choose(middle).misses <= spend { dear = middle } else { cheap = middle }
      }
      let options = choose(dear).options
      // A constant count is asked a startup ahead of its window and kept through the window
      // before it, whose queue may still need it; a ceiling caps what zero-wait asks.
      let ticks = asked.indices.map { tick in
        capped
          ? min(asked[tick], low + options[window(of: tick)])
          : low + max(options[window(of: tick)], options[min(max(window(of: tick) - 1, 0), windows - 1)])
      }
      let tried = try score(ticks, allowed: allowed, cheaperThan: nil)
      if tried.feasible {
        found = tried
        break
      }
    }
    return found
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
