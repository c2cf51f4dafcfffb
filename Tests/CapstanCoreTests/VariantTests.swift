import Foundation
import Testing

@testable import CapstanCore

@Suite("Variants: one process's capacity filled cheapest first")
struct VariantTests {
  /// An H100 variant ($4.10 an hour, 2.5 units: $1.64 a unit) and an L4 variant ($0.80, 0.5
  /// units: $1.60 a unit); 10 requests a second a unit of capacity.
  static func policy(
    l4: String = "max: 16", h100: String = "max: 8", process: String = "", top: String = ""
  ) throws -> Policy {
    try loadPolicy(
      """
      \(top)
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 40}
          \(process)
          variants:
            h100: {cost_per_hour_usd: 4.10, capacity: 2.5, \(h100)}
            l4: {cost_per_hour_usd: 0.80, capacity: 0.5, \(l4)}
      """)
  }

  static let h100 = "inference.h100"
  static let l4 = "inference.l4"

  @Test("the fill order is by dollars per unit of capacity, and validate's targets are the variants")
  func fillOrder() throws {
    let policy = try Self.policy()
    #expect(policy.targets.map(\.name) == [Self.h100, Self.l4])
    let group = try #require(policy.variantGroup(named: "inference"))
    #expect(group.fillOrder == [Self.l4, Self.h100])
    #expect(group.process.min == 1 && group.process.max == 40)
    #expect(policy.target(named: Self.l4)?.variant?.capacity == 0.5)
  }

  @Test("a scale-up fills the cheapest variant per unit first")
  func cheapestFirst() throws {
    var harness = EngineHarness(try Self.policy(), replicas: [Self.h100: 0, Self.l4: 2])
    harness.tick(at: 0, ["rate": 50])
    #expect(harness.replicas == [Self.h100: 0, Self.l4: 10])
    let record = try #require(harness.events(.scaleUp).first)
    #expect(record.process == Self.l4 && record.from == 2 && record.to == 10)
    #expect(record.reason == .targetTracking)
    #expect(
      record.detail.contains(
        "inference capacity 1 -> 5 (wanted 5): rate 50 / target 10 per unit of capacity → 5;"),
      "\(record.detail)")
    #expect(
      record.detail.contains(
        "variants filled cheapest per unit of capacity first: l4 2 -> 10 ($1.60 an hour a unit), h100 0 ($1.64 an hour a unit)"
      ), "\(record.detail)")
    #expect(record.costPerHourUSD == 8)
  }

  @Test("at a variant's max the fill spills to the next, and records the move of each")
  func spillAtMax() throws {
    var harness = EngineHarness(try Self.policy(l4: "max: 4"), replicas: [Self.h100: 0, Self.l4: 2])
    let decision = harness.tick(at: 0, ["rate": 50])
    // L4s to their max (2 units), then two H100s for the 3 left: 7 units.
    #expect(harness.replicas == [Self.h100: 2, Self.l4: 4])
    #expect(decision.actions.map(\.process) == [Self.l4, Self.h100])
    #expect(harness.events(.scaleUp).count == 2)
    #expect(harness.events(.blocked).isEmpty)
  }

  @Test("a full GPU pool spills the fill too, and a process short of what it wants says why")
  func spillAtPool() throws {
    let pools = "gpu_pools: {l4s: {gpus: 6}, h100s: {gpus: 1}}"
    let policy = try Self.policy(
      l4: "max: 16, resources: {gpu: 1, gpu_pool: l4s}", h100: "max: 8, resources: {gpu: 1, gpu_pool: h100s}",
      top: pools)
    var harness = EngineHarness(policy, replicas: [Self.h100: 0, Self.l4: 2])
    harness.tick(at: 0, ["rate": 50])
    // Six L4s (3 units), then the pool's one H100: 5.5 units.
    #expect(harness.replicas == [Self.h100: 1, Self.l4: 6])
    harness.tick(at: 15, ["rate": 80])
    // 8 units wanted, and both pools are full: nothing moves, and the block is recorded once.
    #expect(harness.replicas == [Self.h100: 1, Self.l4: 6])
    harness.tick(at: 30, ["rate": 80])
    let blocked = harness.events(.blocked)
    #expect(blocked.count == 1, "\(blocked)")
    let record = try #require(blocked.first)
    #expect(record.process == "inference" && record.reason == .gpuPool && record.to == 8)
    #expect(record.detail.contains("wanted capacity 8, the variants reach 5.5"), "\(record.detail)")
    #expect(record.detail.contains("l4 held at 6"), "\(record.detail)")
    // Wanted 7, then 8 again, with nothing moving: 7 is news, 8 is not; the hold stands.
    harness.tick(at: 45, ["rate": 70])
    harness.tick(at: 60, ["rate": 80])
    #expect(harness.events(.blocked).map(\.to) == [8, 7], "\(harness.events(.blocked).map(\.detail))")
    #expect(harness.state.targets["inference"]?.lastBlocked?.reason == .gpuPool)
  }

  @Test("a scale-down gives up the dearest per unit first, after the process's window")
  func dearestRemovedFirst() throws {
    var harness = EngineHarness(try Self.policy(l4: "max: 4"), replicas: [Self.h100: 0, Self.l4: 2])
    harness.tick(at: 0, ["rate": 70])
    #expect(harness.replicas == [Self.h100: 2, Self.l4: 4])
    // 2 units wanted; the interactive scale-down window (5 minutes) holds 7 until it passes.
    for tick in 1...19 { harness.tick(at: Double(tick) * 15, ["rate": 20]) }
    #expect(harness.replicas == [Self.h100: 2, Self.l4: 4])
    harness.tick(at: 300, ["rate": 20])
    // Both H100s go ($1.64 a unit); the L4s' 2 units cover what is wanted.
    #expect(harness.replicas == [Self.h100: 0, Self.l4: 4])
    let down = try #require(harness.events(.scaleDown).first)
    #expect(down.process == Self.h100 && down.from == 2 && down.to == 0)
  }

  @Test("prefer: overrides cost")
  func preferred() throws {
    var harness = EngineHarness(
      try Self.policy(process: "prefer: [h100]"), replicas: [Self.h100: 0, Self.l4: 2])
    harness.tick(at: 0, ["rate": 50])
    // 1 unit runs; 4 more are two H100s (6 units in all).
    #expect(harness.replicas == [Self.h100: 2, Self.l4: 2])
    let group = try #require(harness.engine.policy.variantGroup(named: "inference"))
    #expect(group.fillOrder == [Self.h100, Self.l4] && group.preferred == 1)
  }

  @Test("a missing signal holds the mix: no variant scales down, and the outage is the process's")
  func missingSignal() throws {
    var harness = EngineHarness(try Self.policy(), replicas: [Self.h100: 1, Self.l4: 10])
    for tick in 0...30 { harness.tick(at: Double(tick) * 15, [:]) }
    #expect(harness.replicas == [Self.h100: 1, Self.l4: 10])
    let outage = try #require(harness.events(.signalMissing).first)
    #expect(outage.process == "inference" && outage.detail.contains("inference will not scale down"))
  }

  @Test("a budget frozen in the middle of a mix stops growth of every variant, not the scale-down")
  func frozenBudget() throws {
    let policy = try Self.policy(
      l4: "max: 4", process: "budget: team", top: "budgets: {team: {daily_budget_usd: 1}}")
    var harness = EngineHarness(policy, replicas: [Self.h100: 1, Self.l4: 4])
    // $7.30 an hour: $0.95 of the day's $1 is spent within 8 minutes.
    for tick in 0...40 { harness.tick(at: Double(tick) * 15, ["rate": 40]) }
    #expect(harness.replicas == [Self.h100: 1, Self.l4: 4])
    harness.tick(at: 615, ["rate": 100])
    #expect(harness.replicas == [Self.h100: 1, Self.l4: 4])
    let blocked = try #require(harness.events(.blocked).last)
    #expect(blocked.process == "inference" && blocked.reason == .budgetFrozen, "\(blocked)")
    // Less load still scales down, dearest first.
    for tick in 42...70 { harness.tick(at: Double(tick) * 15, ["rate": 15]) }
    #expect(harness.replicas == [Self.h100: 0, Self.l4: 4])
  }

  @Test("a variant's minimum runs whatever the load, and its replicas count toward the capacity")
  func variantMinimum() throws {
    var harness = EngineHarness(
      try Self.policy(h100: "min: 1, max: 8"), replicas: [Self.h100: 1, Self.l4: 0])
    harness.tick(at: 0, ["rate": 40])
    // 2.5 units run; 1.5 more are three L4s.
    #expect(harness.replicas == [Self.h100: 1, Self.l4: 3])
  }

  @Test("an action the backend refused is forgotten, with its process's windows, and decided again")
  func refusedVariant() throws {
    let policy = try Self.policy()
    let engine = ScalingEngine(policy: policy)
    let inputs = EngineInputs(
      signals: ["rate": 50],
      replicas: [Self.h100: ReplicaStatus(0), Self.l4: ReplicaStatus(2)])
    let (first, state) = engine.decide(inputs, state: EngineState(), now: t0)
    #expect(first.actions.map(\.to) == [10])
    var forgotten = state
    forgotten.forget(Self.l4, as: EngineState(), in: policy)
    #expect(forgotten.targets["inference"] == nil)
    let (again, _) = engine.decide(inputs, state: forgotten, now: t0.addingTimeInterval(15))
    #expect(again.actions == first.actions)
    #expect(engine.position(ofTarget: "inference") == nil && engine.position(ofTarget: Self.l4) == 1)
  }

  @Test("the arithmetic: growth stops at reach, shrinking keeps what is wanted and each min")
  func fillArithmetic() {
    let l4 = VariantFill.Member(capacity: 0.5, current: 2, min: 0, reach: 6)
    #expect(VariantFill.grow(l4, from: 1, toward: 2.2) == 5)
    #expect(VariantFill.grow(l4, from: 1, toward: 9) == 6)
    #expect(
      VariantFill.grow(VariantFill.Member(capacity: 0.1, current: 0, min: 0, reach: 40), from: 0, toward: 3)
        == 30)
    let members = [
      VariantFill.Member(capacity: 0.5, current: 4, min: 1, reach: 4),
      VariantFill.Member(capacity: 2.5, current: 2, min: 0, reach: 2),
    ]
    #expect(VariantFill.shrink(members, toward: 2) == [4, 0])
    #expect(VariantFill.shrink(members, toward: 0) == [1, 0])
    // An H100 is more than the 2 units above 5: the L4s go instead, down to their min.
    #expect(VariantFill.shrink(members, toward: 5) == [1, 2])
    #expect(VariantFill.units(2.9999999999) == 3 && VariantFill.units(3.5) == 3)
  }

  @Test("bad variants are refused at their line")
  func refusals() {
    let noCapacity = refusal(
      """
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          variants:
            l4: {cost_per_hour_usd: 0.8}
      """)
    #expect(
      noCapacity.contains("p.yaml:5:7: error: variant 'l4' of process 'inference' needs capacity"),
      "\(noCapacity)")
    let unknownPrefer = refusal(
      """
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          prefer: [h10]
          variants:
            h100: {capacity: 2}
      """)
    #expect(
      unknownPrefer.contains(
        "p.yaml:4:14: error: prefer names 'h10', which is not a variant of process 'inference'; did you mean 'h100'?"
      ),
      "\(unknownPrefer)")
    let moved = refusal(
      """
      processes:
        inference:
          cost_per_hour_usd: 4
          local: {command: [sleep, '60']}
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          variants:
            h100: {capacity: 2}
      """)
    #expect(
      moved.contains(
        "p.yaml:3:24: error: process 'inference' has variants, so cost_per_hour_usd belongs to each variant"),
      "\(moved)")
    #expect(moved.contains("so local belongs to each variant: move it under variants.NAME.local"), "\(moved)")
    let pool = refusal(
      """
      gpu_pools: {h100s: {gpus: 4}}
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          variants:
            h100: {capacity: 2, resources: {gpu: 1, gpu_pool: h100z}}
      """)
    #expect(
      pool.contains("GPU pool 'h100z' is not declared under gpu_pools; did you mean 'h100s'?"), "\(pool)")
    let breaker = refusal(
      """
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          variants:
            h100: {capacity: 2}
      autoscaling:
        spend:
          process: inference
          cost_circuit_breaker: {daily_budget_usd: 10}
      """)
    #expect(breaker.contains("has variants and a cost_circuit_breaker"), "\(breaker)")
    let costCeiling = refusal(
      """
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          variants:
            h100: {capacity: 2, cost_per_hour_usd: 4}
      autoscaling:
        inference:
          scale_up: {constraints: [{max_cost_per_hour_usd: 20}]}
      """)
    #expect(
      costCeiling.contains(
        "has variants and a max_cost_per_hour_usd constraint, which prices one kind of replica"),
      "\(costCeiling)")
    let noVariants = refusal(
      """
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          prefer: [h100]
      """)
    #expect(noVariants.contains("prefer: orders variants, and process 'inference' has none"), "\(noVariants)")
  }

  /// Bounds that cannot hold together are refused in `Fixtures/invalid/bounds.yaml`.
  @Test("variants whose maxes carry less than the process's max are a scarce pool, and stand")
  func scarcePool() throws {
    let policy = try loadPolicy(
      """
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 16}
          variants:
            h100: {capacity: 1, max: 2}
            l4: {capacity: 0.5, max: 4}
      """)
    #expect(policy.target(named: Self.h100)?.max == 2 && policy.target(named: Self.l4)?.max == 4)
  }

  @Test("on Kubernetes each variant scales its own workload, named after it unless it names one")
  func kubernetesWorkloads() throws {
    let policy = try loadPolicy(
      """
      backend: kubernetes
      processes:
        inference:
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          variants:
            h100: {capacity: 2, kubernetes: {kind: StatefulSet, name: infer-h100}}
            l4: {capacity: 0.5}
      """)
    #expect(
      policy.target(named: Self.h100)?.kubernetes
        == KubernetesWorkload(kind: .statefulSet, name: "infer-h100"))
    #expect(
      policy.target(named: Self.l4)?.kubernetes == KubernetesWorkload(kind: .deployment, name: "inference.l4")
    )
  }
}
