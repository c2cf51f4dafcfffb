import CapstanCore
import CapstanTestKit
import Foundation
import Testing

@testable import CapstanSimulation

@Suite("Baselines")
struct BaselineTests {
  static let policyText = """
    controller: {interval: 60s}
    processes:
      w:
        class: batch
        cost_per_hour_usd: 2
        scaling: {metric: q, target: 10, activation_threshold: 5, min: 0, max: 40}
        simulation: {slots: 1, signals: {q: queue_depth}, slo: {latency: queue_wait, bound: 10s}}
    autoscaling:
      w:
        scale_up: {conditions: [{metric: q > 100}], action: {add_instances: 1, cooldown: 10m}}
        cost_circuit_breaker: {daily_budget_usd: 5}
    """

  @Test("the HPA's defaults: 15 s sync, no rules, max(4, 100%) up at once, 300 s down window, min at least 1")
  func hpaDefaults() throws {
    let hpa = Baseline.hpa(try policy(Self.policyText))
    let w = try #require(hpa.targets.first)
    #expect(hpa.controller.interval == 15)
    #expect(w.up == DirectionRules(step: 4, stepPercent: 100, stabilization: 0))
    #expect(w.down == DirectionRules(stepPercent: 100, stabilization: 300))
    #expect(w.tracking?.tolerance == 0.1 && w.tracking?.target == 10)
    #expect(w.min == 1 && w.max == 40 && w.budget == nil)
  }

  @Test("KEDA's defaults: 30 s polling, activation at 0, may reach zero")
  func kedaDefaults() throws {
    let keda = Baseline.keda(try policy(Self.policyText))
    let w = try #require(keda.targets.first)
    #expect(keda.controller.interval == 30)
    #expect(w.tracking?.activationThreshold == 0)
    #expect(w.min == 0)
  }

  @Test("the HPA's scale-up limit, step by step: from 1, 4 at most; from 8, 16; from 10 down to 1 at once")
  func hpaSteps() throws {
    let hpa = Baseline.hpa(try policy(Self.policyText))
    let engine = ScalingEngine(policy: hpa)
    var state = EngineState()
    func decide(_ current: Int, queue: Double, at seconds: Double) -> Int {
      let (decision, next) = engine.decide(
        EngineInputs(signals: ["q": queue], replicas: ["w": ReplicaStatus(current)]), state: state,
        now: Date(timeIntervalSince1970: seconds))
      state = next
      return decision.actions.first?.to ?? current
    }
    #expect(decide(1, queue: 400, at: 0) == 5)  // 1 + max(4, 1)
    #expect(decide(8, queue: 400, at: 15) == 16)  // 8 + max(4, 8)
    state = EngineState()
    #expect(decide(10, queue: 0, at: 1_000) == 10)  // a fresh start holds a full window first
    #expect(decide(10, queue: 0, at: 1_300) == 1)  // then min at once: 100% per sync
  }

  @Test(
    "the zero-wait schedule runs ceil(work in service / slots), and its measured SLO is met on a steady load")
  func zeroWaitSteady() throws {
    let policy = try queueWorker(max: 10, slots: 2, slo: "latency: queue_wait, bound: 1s")
    // A job every 2 s, each 10 s long: 5 in service at once, so 3 replicas of 2 slots.
    let trace = jobs(stride(from: 0.0, to: 600, by: 2).map { $0 }, work: 10)
    let zeroWait = try #require(
      try Simulator(policy: policy, traces: ["w": trace]).run(.zeroWait).processes.first)
    #expect(zeroWait.peakReplicas == 3)
    #expect(zeroWait.run == "zero-wait")
    // Capacity comes one tick after the first arrivals: only the first requests wait.
    #expect(zeroWait.sloAttainment > 0.97)
  }

  /// Tiny traces for the oracle against brute force: arrivals, each job's work, the startup,
  /// the SLO's bound and target, how runs start, and whether the oracle finds the cheapest
  /// schedule exactly. The SLOs leave room to wait or to miss. Where it is not exact, the
  /// cheapest schedule holds three replicas over the first two ticks to serve the early burst in
  /// time and lets the last two requests fail, three changes away from the oracle's.
  static let bruteForceCases: [([Double], Double, String, String, Simulator.Start, Bool)] = [
    ([5, 6, 7, 8, 25, 26], 12, "0s", "bound: 5s, target: 80%", .min, true),
    ([2, 3, 4, 21, 22, 33, 34, 35], 9, "10s", "bound: 12s, target: 75%", .min, true),
    ([1, 2, 3, 4, 5, 6, 41, 42], 8, "0s", "bound: 6s, target: 75%", .oracle, false),
    ([12, 14, 27, 33, 34], 8, "10s", "bound: 1s, target: 100%", .oracle, true),
    ([0, 1, 2, 3, 30, 31, 32, 50], 6, "0s", "bound: 3s, target: 60%", .oracle, true),
  ]

  @Test(
    "the oracle against brute force over every schedule of 0 to 3 replicas across 7 ticks: it meets the SLO, at the cheapest cost or within one replica for one tick of it",
    arguments: bruteForceCases)
  func oracleAgainstBruteForce(
    arrivals: [Double], work: Double, startup: String, slo: String, start: Simulator.Start, exact: Bool
  ) throws {
    let policy = try queueWorker(
      max: 3, slo: "latency: queue_wait, \(slo)", simulation: ["startup: \(startup)"], interval: "10s")
    let simulator = try Simulator(policy: policy, traces: ["w": jobs(arrivals, work: work)], start: start)
    let target = try #require(policy.targets.first?.simulation?.slo.target)
    // Every schedule of 0 to 3 replicas over the first 7 ticks (none after): 4^7 of them.
    let ticks = 7
    var cheapest = Double.infinity
    for code in 0..<(1 << (2 * ticks)) {
      let replicas = { (tick: Int) in tick < ticks ? code >> (2 * tick) & 3 : 0 }
      let run = try simulator.run(
        .schedule { _, tick in replicas(tick) }, name: "schedule",
        start: start == .oracle ? ["w": replicas(0)] : [:],
        onEvent: { _ in })
      let w = try #require(run.processes.first)
      if w.sloAttainment >= target { cheapest = min(cheapest, w.replicaHours) }
    }
    let yardstick = try simulator.yardstick()
    let schedule = try #require(yardstick.oracle["w"])
    // The oracle's schedule lies in the space searched: nothing after the seventh tick.
    #expect(schedule.dropFirst(ticks).allSatisfy { $0 == 0 })
    let oracle = try #require(try simulator.run(.oracle, yardstick: yardstick).processes.first)
    #expect(oracle.sloAttainment >= target)
    #expect(cheapest.isFinite)
    // No schedule in the space is cheaper than the cheapest, the oracle's included.
    #expect(oracle.replicaHours >= cheapest - 1e-9)
    if exact {
      #expect(abs(oracle.replicaHours - cheapest) < 1e-9, "oracle \(oracle.replicaHours * 3600) s")
    } else {
      #expect(oracle.replicaHours - cheapest <= 10.0 / 3600 + 1e-9, "oracle \(oracle.replicaHours * 3600) s")
    }
  }

  @Test(
    "the oracle costs no more than the static pool or the zero-wait schedule, and meets the SLO as they do")
  func oracleBelowOtherSchedules() throws {
    let file = repositoryRoot.appendingPathComponent("examples/simulate/jobs.yaml")
    let loaded = try PolicyLoader.load(data: Data(contentsOf: file), file: file.path).policy
    let trace = try Trace.load(
      path: repositoryRoot.appendingPathComponent("examples/simulate/jobs-burst.csv").path)
    let simulator = try Simulator(policy: loaded, traces: ["worker": trace], start: .oracle)
    let yardstick = try simulator.yardstick()
    var runs: [ProcessResult] = []
    for baseline in [Baseline.oracle, .staticPool, .zeroWait] {
      runs.append(try #require(try simulator.run(baseline, yardstick: yardstick).processes.first))
    }
    let (oracle, pool, zeroWait) = (runs[0], runs[1], runs[2])
    #expect(oracle.sloAttainment >= 0.95 && pool.sloAttainment >= 0.95 && zeroWait.sloAttainment >= 0.95)
    #expect(oracle.replicaHours <= pool.replicaHours && oracle.replicaHours <= zeroWait.replicaHours)
    // Letting requests wait within the bound is cheaper than never letting them wait.
    #expect(oracle.replicaHours < zeroWait.replicaHours * 0.9)
  }

  /// A queue worker over twelve hours: busy half hours take a job every 10 or 15 s, quiet ones
  /// one a minute, 25 s of work each; 95% of jobs within 10 s, a 60 s startup and tick. The
  /// simulator starts warm; the last value is the trace's requests.
  private func busyAndQuietHalfHours() throws -> (Simulator, ScalingTarget, SimulationSettings.SLO, Int) {
    let policy = try queueWorker(
      max: 8, slo: "latency: queue_wait, bound: 10s, target: 95%", simulation: ["startup: 60s"],
      interval: "60s")
    var arrivals: [Double] = []
    for phase in 0..<24 {
      let gap = phase.isMultiple(of: 2) ? (phase.isMultiple(of: 4) ? 10.0 : 15.0) : 60.0
      arrivals += stride(from: Double(phase) * 1800, to: Double(phase + 1) * 1800, by: gap).map { $0 }
    }
    let simulator = try Simulator(policy: policy, traces: ["w": jobs(arrivals, work: 25)], start: .oracle)
    let target = try #require(policy.targets.first)
    return (simulator, target, try #require(target.simulation?.slo), arrivals.count)
  }

  @Test(
    "over twelve hours of busy and quiet half hours, a search of 30 schedules finds an oracle within 2% of what 400 find: each window gets the count it needs"
  )
  func windowedOracle() throws {
    // Too many ticks for 30 schedules to lower block by block.
    let (simulator, target, slo, _) = try busyAndQuietHalfHours()
    var cost: [Int: Double] = [:]
    for most in [30, 400] {
      var search = OracleSearch(simulator: simulator, target: target, slo: slo, most: most)
      let (schedule, _) = try search.run()
      #expect(search.evaluations <= most)
      let run = try #require(
        try simulator.run(.oracle, yardstick: Yardstick(oracle: ["w": schedule], staticPool: [:])).processes
          .first)
      #expect(run.sloAttainment >= slo.target)
      cost[most] = run.replicaHours
    }
    let small = try #require(cost[30])
    let large = try #require(cost[400])
    #expect(small <= large * 1.02, "30 schedules: \(small) replica-hours; 400: \(large)")
  }

  @Test(
    "a search whose budget of requests would not fit its windowed step, as a long trace's would not, is given what the step takes and finds what a large budget finds"
  )
  func windowedBudget() throws {
    let (simulator, target, slo, requests) = try busyAndQuietHalfHours()
    // Requests for 16 schedules, the least a search is given: too few for the windowed step.
    let searched = 16 * requests
    var cost: [String: Double] = [:]
    var evaluations: [String: Int] = [:]
    for (name, windowed) in [("held", 0), ("raised", 100 * requests), ("large", Int.max / 2)] {
      var search = OracleSearch(
        simulator: simulator, target: target, slo: slo,
        requestBudget: (search: name == "large" ? Int.max / 2 : searched, windowed: windowed))
      let (schedule, _) = try search.run()
      let run = try #require(
        try simulator.run(.oracle, yardstick: Yardstick(oracle: ["w": schedule], staticPool: [:])).processes
          .first)
      #expect(run.sloAttainment >= slo.target)
      cost[name] = run.replicaHours
      evaluations[name] = search.evaluations
    }
    let (held, raised, large) = try (
      #require(cost["held"]), #require(cost["raised"]), #require(cost["large"])
    )
    #expect(try #require(evaluations["held"]) <= 16)
    #expect(raised <= large * 1.02, "raised: \(raised) replica-hours; a large budget: \(large)")
    #expect(held > large * 1.02, "held to 16 schedules: \(held) replica-hours; a large budget: \(large)")
  }

  @Test("the static pool is the fewest constant replicas that meet the SLO")
  func staticPool() throws {
    let policy = try queueWorker(max: 10, slots: 2, slo: "latency: queue_wait, bound: 5s, target: 90%")
    let trace = jobs(stride(from: 0.0, to: 600, by: 1.5).map { $0 }, work: 10)
    let simulator = try Simulator(policy: policy, traces: ["w": trace], start: .oracle)
    let pool = try #require(try simulator.yardstick().staticPool["w"])
    func attainment(_ replicas: Int) throws -> Double {
      try #require(
        try simulator.run(
          .schedule { _, _ in replicas }, name: "static", start: ["w": replicas], onEvent: { _ in }
        )
        .processes.first
      ).sloAttainment
    }
    #expect(try attainment(pool) >= 0.9)
    #expect(try attainment(pool - 1) < 0.9)
    let run = try #require(try simulator.run(.staticPool).processes.first)
    #expect(run.run == "static" && run.scaleActions == 0 && run.peakReplicas == pool)
  }

  @Test(
    "where no schedule meets the SLO, the static pool is max and the oracle is the schedule that comes nearest, no worse than zero-wait"
  )
  func nothingMeetsTheSLO() throws {
    // A job a second, five seconds each, on at most two one-slot replicas: the queue only grows.
    let policy = try queueWorker(max: 2, slo: "latency: queue_wait, bound: 1s, target: 99%", interval: "10s")
    let trace = jobs(stride(from: 0.0, to: 120, by: 1).map { $0 }, work: 5)
    let simulator = try Simulator(policy: policy, traces: ["w": trace], start: .oracle)
    let yardstick = try simulator.yardstick()
    #expect(yardstick.staticPool["w"] == 2)
    let oracle = try #require(try simulator.run(.oracle, yardstick: yardstick).processes.first)
    let zeroWait = try #require(try simulator.run(.zeroWait, yardstick: yardstick).processes.first)
    #expect(oracle.sloAttainment < 0.99)
    #expect(oracle.sloAttainment >= zeroWait.sloAttainment)
  }

  @Test(
    "a warm start begins each run with the replicas the oracle runs at its first tick; --start min begins cold"
  )
  func warmStart() throws {
    // Busy from the first second, with a startup of two minutes: a cold start misses.
    let policy = try policy(
      """
      controller: {interval: 15s}
      processes:
        w:
          class: batch
          scaling: {metric: busy, target: 2, min: 0, max: 10}
          simulation:
            slots: 2
            startup: 2m
            signals: {busy: concurrency}
            slo: {latency: queue_wait, bound: 5s, target: 95%}
      """)
    let trace = jobs(stride(from: 0.0, to: 1_200, by: 1).map { $0 }, work: 6)
    let warm = try Simulator(policy: policy, traces: ["w": trace], start: .oracle)
    let yardstick = try warm.yardstick()
    let first = try #require(yardstick.oracle["w"]?.first)
    #expect(first >= 3)
    let warmRun = try #require(try warm.run(yardstick: yardstick).processes.first)
    let cold = try #require(
      try Simulator(policy: policy, traces: ["w": trace], start: .min).run().processes.first)
    #expect(warmRun.sloAttainment >= 0.95)
    #expect(cold.sloAttainment < 0.95)
    #expect(try warm.run(yardstick: yardstick).start == .oracle)
  }

  @Test("every baseline runs on the same trace and fleet and is scored the same way")
  func allBaselines() throws {
    let policy = try policy(Self.policyText)
    let trace = jobs(stride(from: 0.0, to: 1_800, by: 3).map { $0 }, work: 20)
    let simulator = try Simulator(policy: policy, traces: ["w": trace])
    let runs = try [simulator.run()] + Baseline.allCases.map { try simulator.run($0) }
    #expect(
      runs.map { $0.processes.first?.run } == ["policy", "oracle", "static", "zero-wait", "hpa", "keda"])
    #expect(runs.allSatisfy { $0.processes.first?.requests == 600 })
    let json = SimulationReport.json(runs)
    #expect(json.contains(#""replica_hours_vs_oracle" : 1"#))
  }
}
