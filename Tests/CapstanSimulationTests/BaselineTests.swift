import CapstanCore
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

  @Test("the oracle runs ceil(work in service / slots), and its measured SLO is met on a steady load")
  func oracleSteady() throws {
    let policy = try queueWorker(max: 10, slots: 2, slo: "latency: queue_wait, bound: 1s")
    // A job every 2 s, each 10 s long: 5 in service at once, so 3 replicas of 2 slots.
    let trace = jobs(stride(from: 0.0, to: 600, by: 2).map { $0 }, work: 10)
    let oracle = try #require(
      try Simulator(policy: policy, traces: ["w": trace]).run(.oracle).processes.first)
    #expect(oracle.peakReplicas == 3)
    #expect(oracle.run == "oracle")
    // Capacity comes one tick after the first arrivals: only the first requests wait.
    #expect(oracle.sloAttainment > 0.97)
  }

  /// Tiny traces, and whether the oracle's schedule is the cheapest: where a replica's last job
  /// ends mid-tick, removing it busy (it drains, then goes) can beat the oracle by part of a tick.
  static let bruteForceCases: [([Double], Double, String, Bool)] = [
    ([5, 6, 25, 26], 4, "0s", true), ([20, 21, 32, 33], 7, "15s", true),
    ([12, 14, 27, 33], 8, "10s", false), ([12, 13, 29, 41], 15, "10s", false),
  ]

  @Test(
    "the oracle never lets a request wait; brute force over every schedule finds it cheapest where no mid-tick drain helps, and none under the work bound",
    arguments: bruteForceCases)
  func oracleAgainstBruteForce(arrivals: [Double], work: Double, startup: String, exact: Bool) throws {
    let policy = try queueWorker(
      max: 2, slo: "latency: queue_wait, bound: 1s, target: 100%", simulation: ["startup: \(startup)"],
      interval: "10s")
    let simulator = try Simulator(policy: policy, traces: ["w": jobs(arrivals, work: work)])
    // Every schedule of 0, 1 or 2 replicas over the first 8 ticks (none after): 3^8 of them.
    let ticks = 8
    var cheapest = Double.infinity
    for code in 0..<Int(pow(3.0, Double(ticks))) {
      let run = try simulator.run(
        .schedule { _, time in
          let tick = Int(time / 10)
          guard tick < ticks else { return 0 }
          return code / Int(pow(3.0, Double(tick))) % 3
        }, name: "schedule", onEvent: { _ in })
      let w = try #require(run.processes.first)
      // With 4 requests the 99th percentile is the longest wait.
      if w.latencyP99 == 0 && w.failed == 0 { cheapest = min(cheapest, w.replicaHours) }
    }
    let oracle = try #require(try simulator.run(.oracle).processes.first)
    #expect(oracle.latencyP99 == 0 && oracle.failed == 0)
    #expect(oracle.workBoundReplicaHours <= cheapest && cheapest <= oracle.replicaHours + 1e-9)
    if exact {
      #expect(abs(oracle.replicaHours - cheapest) < 1e-9, "oracle \(oracle.replicaHours * 3600) s")
    } else {
      // Within one replica for two ticks of the cheapest.
      #expect(oracle.replicaHours - cheapest <= 20.0 / 3600 + 1e-9)
    }
  }

  @Test("every baseline runs on the same trace and fleet and is scored the same way")
  func allBaselines() throws {
    let policy = try policy(Self.policyText)
    let trace = jobs(stride(from: 0.0, to: 1_800, by: 3).map { $0 }, work: 20)
    let simulator = try Simulator(policy: policy, traces: ["w": trace])
    let runs = try [simulator.run()] + Baseline.allCases.map { try simulator.run($0) }
    #expect(runs.map { $0.processes.first?.run } == ["policy", "oracle", "hpa", "keda"])
    #expect(runs.allSatisfy { $0.processes.first?.requests == 600 })
    let json = SimulationReport.json(runs)
    #expect(json.contains(#""replica_hours_vs_oracle" : 1"#))
  }
}
