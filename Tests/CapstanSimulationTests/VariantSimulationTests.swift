import CapstanCore
import Foundation
import Testing

@testable import CapstanSimulation

/// A queue worker `w` on two variants: `fast` (2 units, $4 an hour: $2 a unit) and `slow`
/// (1 unit, $1 an hour), each with one slot; `fast` and `slow` give their bounds.
func variantWorker(
  fast: String = "max: 2", slow: String = "max: 2", min: Int = 1, max: Int = 6,
  slo: String = "latency: e2e, bound: 1h", autoscaling: String? = nil
) throws -> Policy {
  var yaml = """
    processes:
      w:
        class: batch
        scaling: {metric: q, target: 1, min: \(min), max: \(max)}
        variants:
          fast: {cost_per_hour_usd: 4, capacity: 2, \(fast)}
          slow: {cost_per_hour_usd: 1, capacity: 1, \(slow)}
        simulation:
          slots: 1
          signals: {q: queue_depth}
          slo: {\(slo), target: 99%}

    """
  if let autoscaling { yaml += "autoscaling:\n  w: \(autoscaling)\n" }
  return try policy(yaml)
}

@Suite("Simulating a process with variants")
struct VariantSimulationTests {
  @Test("a variant's replica serves at its capacity's speed and costs its own price")
  func speedAndCost() throws {
    // min 2 units: the slow variant first ($1 a unit), two of them; the fast one never runs.
    let fixed = try variantWorker(slow: "min: 2, max: 2", min: 2, max: 2)
    let w = try #require(
      try Simulator(policy: fixed, traces: ["w": jobs([0, 0], work: 10)]).run().processes.first)
    #expect(w.latencyP50 == 10)
    #expect(w.variantReplicaHours.map(\.variant) == ["slow", "fast"])
    #expect(w.variantReplicaHours.last?.replicaHours == 0)
    #expect(abs(w.costUSD - w.replicaHours * 1) < 1e-9)

    // Only the fast variant: a 10 s job takes 5 s on it, and each replica-hour costs $4.
    let fast = try variantWorker(fast: "min: 1, max: 1", slow: "max: 1", min: 2, max: 2)
    let f = try #require(
      try Simulator(policy: fast, traces: ["w": jobs([0], work: 10)]).run().processes.first)
    #expect(f.latencyP50 == 5)
    #expect(
      abs(f.costUSD - (f.variantReplicaHours.first { $0.variant == "fast" }?.replicaHours ?? 0) * 4) < 1e-9)
  }

  @Test("a variant's own startup holds its new replicas back that long")
  func variantStartup() throws {
    let policy = try variantWorker(
      fast: "max: 1", slow: "max: 3, startup: 2m", min: 1, max: 3, slo: "latency: queue_wait, bound: 1h",
      autoscaling: "{scale_up: {stabilization_window: 0s}}")
    // One slow replica runs (the cheaper per unit) and takes the first of three 10-minute
    // jobs. The tick at 0 s sees 2 waiting and asks for a second slow replica, which starts in
    // its own 2 minutes (the section's startup is 0): the second job waits 120 s. The third
    // waits for the first replica (the queue of 1 is covered by the capacity of 2).
    let w = try #require(
      try Simulator(policy: policy, traces: ["w": jobs([0, 0, 0], work: 600)]).run().processes.first)
    #expect(w.latencyP50 == 120 && w.latencyP99 == 600, "\(w.latencyP50) \(w.latencyP99)")
  }

  @Test("the engine's fill acts on the fleet: the cheap variant first, then the spill")
  func policyRun() throws {
    let policy = try variantWorker(
      autoscaling: "{scale_up: {stabilization_window: 0s}, scale_down: {action: {drain_timeout: 1h}}}")
    // Six jobs of 10 minutes at once: 6 units wanted, the slow variant's 2 then two fast.
    let w = try #require(
      try Simulator(policy: policy, traces: ["w": jobs(Array(repeating: 0, count: 6), work: 600)]).run()
        .processes.first)
    #expect(w.peakReplicas == 4)
    #expect(w.failed == 0)
    #expect(w.variantReplicaHours.allSatisfy { $0.replicaHours > 0 })
  }

  @Test("a schedule's capacity fills cheapest first within each variant's ceiling")
  func mix() throws {
    let policy = try variantWorker(fast: "max: 2", slow: "max: 3")
    let simulator = try Simulator(policy: policy, traces: ["w": jobs([0], work: 1)])
    let kinds = try #require(simulator.kinds(of: "w"))
    #expect(kinds.map(\.target.name) == ["w.slow", "w.fast"])
    #expect(Simulator.mix(2, of: kinds, in: policy) == [2, 0])
    #expect(Simulator.mix(4, of: kinds, in: policy) == [3, 1])
    #expect(Simulator.mix(9, of: kinds, in: policy) == [3, 2])
    #expect(Simulator.step(of: kinds) == 1)
    #expect(Simulator.stepBounds(of: policy.variantGroup(named: "w")!.process, kinds: kinds) == (1, 6))
  }

  @Test("the oracle of a process with variants costs no more than its static pool or zero-wait")
  func yardstick() throws {
    let policy = try variantWorker(slo: "latency: queue_wait, bound: 30s")
    let arrivals = (0..<40).map { Double($0 * 20) } + (0..<20).map { 900 + Double($0 * 5) }
    let simulator = try Simulator(policy: policy, traces: ["w": jobs(arrivals, work: 30)], start: .oracle)
    let yardstick = try simulator.yardstick()
    var runs: [ProcessResult] = []
    for baseline in [Baseline.oracle, .staticPool, .zeroWait] {
      runs.append(try #require(try simulator.run(baseline, yardstick: yardstick).processes.first))
    }
    #expect(runs[0].sloAttainment >= 0.99)
    #expect(
      runs[0].costUSD <= runs[1].costUSD + 1e-9 && runs[0].costUSD <= runs[2].costUSD + 1e-9,
      "\(runs.map(\.costUSD))")
  }

  @Test("--trace may name a process with variants; its variants' names are not processes of their own")
  func traceNames() throws {
    let policy = try variantWorker()
    #expect(throws: SimulationError.self) {
      try Simulator(policy: policy, traces: ["w.slow": jobs([0], work: 1)])
    }
    #expect(throws: Never.self) { try Simulator(policy: policy, traces: ["w": jobs([0], work: 1)]) }
  }
}

@Suite("One variant of capacity 1 is the process itself")
struct OneVariantTests {
  @Test("the same requests served the same way: scores, replica-hours and cost all equal")
  func sameAsPlain() throws {
    let plain = try policy(
      """
      processes:
        w:
          class: batch
          cost_per_hour_usd: 3
          scaling: {metric: q, target: 2, min: 1, max: 5}
          simulation: {slots: 1, startup: 30s, signals: {q: queue_depth}, slo: {latency: queue_wait, bound: 20s, target: 99%}}
      """)
    let variant = try policy(
      """
      processes:
        w:
          class: batch
          scaling: {metric: q, target: 2, min: 1, max: 5}
          variants:
            only: {cost_per_hour_usd: 3, capacity: 1, max: 5}
          simulation: {slots: 1, startup: 30s, signals: {q: queue_depth}, slo: {latency: queue_wait, bound: 20s, target: 99%}}
      """)
    let arrivals = (0..<60).map { Double($0 * 7) } + (0..<30).map { 600 + Double($0 * 3) }
    let trace = jobs(arrivals, work: 20)
    for baseline in [nil, Baseline.oracle, .staticPool, .hpa] {
      let a = try #require(try Simulator(policy: plain, traces: ["w": trace]).run(baseline).processes.first)
      let b = try #require(try Simulator(policy: variant, traces: ["w": trace]).run(baseline).processes.first)
      #expect(a.sloAttainment == b.sloAttainment, "\(String(describing: baseline))")
      #expect(abs(a.replicaHours - b.replicaHours) < 1e-9, "\(String(describing: baseline))")
      #expect(abs(a.costUSD - b.costUSD) < 1e-9, "\(String(describing: baseline))")
      #expect(a.scaleActions == b.scaleActions && a.latencyP99 == b.latencyP99)
    }
  }
}
