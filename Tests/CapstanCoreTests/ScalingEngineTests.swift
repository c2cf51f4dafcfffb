import Foundation
import Testing

@testable import CapstanCore

@Suite("Decision engine")
struct ScalingEngineTests {
  /// A utilization target with the scale-down window off, so one tick shows the arithmetic.
  static let utilizationPolicy = """
    processes:
      model:
        scaling: {metric: gpu, target: 70%, min: 1, max: 10}
    autoscaling:
      model:
        scale_down: {stabilization_window: 0s}
    """

  @Test(
    "utilization: desired = ceil(ready × value / target), nothing inside the 10% band",
    arguments: [
      (70.0, 4), (75, 4), (77, 4), (63, 4), (78, 5), (140, 8), (52, 3), (35, 2), (1, 1),
    ])
  func utilization(value: Double, expected: Int) throws {
    var harness = EngineHarness(try loadPolicy(Self.utilizationPolicy), replicas: ["model": 4])
    harness.tick(at: 0, ["gpu": value])
    #expect(harness.replicas["model"] == expected)
  }

  @Test(
    "average value: desired = ceil(total / target per replica)",
    arguments: [(420.0, 2, 5), (200, 2, 2), (205, 2, 2), (230, 2, 3), (0, 3, 1), (10_000, 1, 10)])
  func averageValue(total: Double, start: Int, expected: Int) throws {
    let policy = try loadPolicy(
      """
      processes:
        worker: {scaling: {metric: queue, target: 100, min: 1, max: 10}}
      autoscaling:
        worker: {scale_down: {stabilization_window: 0s}}
      """)
    var harness = EngineHarness(policy, replicas: ["worker": start])
    harness.tick(at: 0, ["queue": total])
    #expect(harness.replicas["worker"] == expected)
  }

  struct ClampCase: CustomTestStringConvertible, Sendable {
    var name: String
    var yaml: String
    var replicas: [String: Int]
    var signals: [String: Double]
    var process: String
    var expected: Int
    var reason: ScaleReason
    var wanted: Int
    var testDescription: String { name }
  }

  static let clampCases: [ClampCase] = [
    ClampCase(
      name: "max_instances", yaml: "processes:\n  w: {scaling: {metric: q, target: 10, min: 1, max: 8}}\n",
      replicas: ["w": 8], signals: ["q": 120], process: "w", expected: 8, reason: .maxInstances, wanted: 12),
    ClampCase(
      name: "max_instances from a policy constraint",
      yaml: """
        processes:
          w: {scaling: {metric: q, target: 10, min: 1, max: 20}}
        autoscaling:
          w: {scale_up: {constraints: [{max_instances: 6}]}}
        """,
      replicas: ["w": 4], signals: ["q": 120], process: "w", expected: 6, reason: .maxInstances, wanted: 12),
    ClampCase(
      name: "step size",
      yaml: """
        processes:
          w: {scaling: {metric: q, target: 10, min: 1, max: 20}}
        autoscaling:
          w: {scale_up: {action: {add_instances: 1}}}
        """,
      replicas: ["w": 2], signals: ["q": 50], process: "w", expected: 3, reason: .stepSize, wanted: 5),
    ClampCase(
      name: "cost ceiling",
      yaml: """
        processes:
          w: {cost_per_hour_usd: 4, scaling: {metric: q, target: 10, min: 1, max: 20}}
        autoscaling:
          w: {scale_up: {constraints: [{max_cost_per_hour_usd: 10}]}}
        """,
      replicas: ["w": 1], signals: ["q": 50], process: "w", expected: 2, reason: .costCeiling, wanted: 5),
    ClampCase(
      name: "rate limit shared with another process",
      yaml: """
        providers:
          llm: {tokens_per_minute: 150000, safety_margin: 0.8}
        processes:
          a:
            scaling: {min: 2, max: 2}
            rate_limit: {provider: llm, tokens_per_minute_per_replica: 30000}
          b:
            scaling: {metric: q, target: 10, min: 1, max: 20}
            rate_limit: {provider: llm, tokens_per_minute_per_replica: 30000}
        """,
      replicas: ["a": 2, "b": 1], signals: ["q": 50], process: "b", expected: 2, reason: .rateLimitCeiling,
      wanted: 5),
    ClampCase(
      name: "GPU pool shared with another process",
      yaml: """
        gpu_pools:
          h100: {gpus: 4}
        processes:
          a:
            scaling: {min: 3, max: 3}
            resources: {gpu: 1, gpu_pool: h100}
          b:
            scaling: {metric: q, target: 10, min: 1, max: 8}
            resources: {gpu: 1, gpu_pool: h100}
        """,
      replicas: ["a": 3, "b": 1], signals: ["q": 40], process: "b", expected: 1, reason: .gpuPool, wanted: 4),
  ]

  @Test("clamps hold the count and say why", arguments: clampCases)
  func clamps(_ item: ClampCase) throws {
    var harness = EngineHarness(try loadPolicy(item.yaml), replicas: item.replicas)
    harness.tick(at: 0, item.signals)
    #expect(harness.replicas[item.process] == item.expected)
    let blocked = harness.events(.blocked).filter { $0.process == item.process }
    #expect(blocked.count == 1)
    #expect(blocked.first?.reason == item.reason)
    #expect(blocked.first?.to == item.wanted)
  }

  @Test("cooldown: no second step in a direction sooner")
  func cooldown() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {metric: q, target: 10, min: 1, max: 20}}
      autoscaling:
        w: {scale_up: {action: {add_instances: 1, cooldown: 60s}}}
      """)
    var harness = EngineHarness(policy, replicas: ["w": 1])
    harness.tick(at: 0, ["q": 50])
    #expect(harness.replicas["w"] == 2)
    harness.tick(at: 30, ["q": 50])
    #expect(harness.replicas["w"] == 2)
    #expect(harness.events(.blocked).last?.reason == .cooldown)
    harness.tick(at: 60, ["q": 50])
    #expect(harness.replicas["w"] == 3)
  }

  @Test("scale-down waits out the stabilization window; the highest recommendation in it wins")
  func stabilization() throws {
    let policy = try loadPolicy("processes:\n  w: {scaling: {metric: q, target: 10, min: 1, max: 20}}\n")
    var harness = EngineHarness(policy, replicas: ["w": 5])
    harness.tick(at: 0, ["q": 50])
    var second = 15.0
    while second < 300 {
      harness.tick(at: second, ["q": second == 150 ? 30 : 10])
      #expect(harness.replicas["w"] == 5, "scaled down at \(second)s, inside the 300s window")
      second += 15
    }
    // At 300s the 5 from t=0 has left the window; the 3 from 150s has not.
    harness.tick(at: 300, ["q": 10])
    #expect(harness.replicas["w"] == 3)
    harness.tick(at: 450, ["q": 10])
    #expect(harness.replicas["w"] == 1)
    #expect(harness.events(.blocked).first?.reason == .stabilization)
  }

  @Test("scale-up is immediate for interactive processes")
  func scaleUpImmediate() throws {
    let policy = try loadPolicy("processes:\n  w: {scaling: {metric: q, target: 10, min: 1, max: 20}}\n")
    var harness = EngineHarness(policy, replicas: ["w": 1])
    harness.tick(at: 0, ["q": 90])
    #expect(harness.replicas["w"] == 9)
    #expect(harness.events(.scaleUp).first?.reason == .targetTracking)
  }

  @Test("a fresh engine does not scale down before a full window")
  func freshStartHolds() throws {
    let policy = try loadPolicy("processes:\n  w: {scaling: {metric: q, target: 10, min: 1, max: 20}}\n")
    var harness = EngineHarness(policy, replicas: ["w": 6])
    harness.tick(at: 0, ["q": 0])
    #expect(harness.replicas["w"] == 6)
    harness.tick(at: 300, ["q": 0])
    #expect(harness.replicas["w"] == 1)
  }

  @Test("missing data never scales down")
  func missingTrackingSignal() throws {
    var harness = EngineHarness(try loadPolicy(Self.utilizationPolicy), replicas: ["model": 4])
    harness.tick(at: 0, [:])
    harness.tick(at: 15, [:])
    #expect(harness.replicas["model"] == 4)
    #expect(harness.events(.signalMissing).count == 1)
    harness.tick(at: 30, ["gpu": 35])
    #expect(harness.replicas["model"] == 2)
    #expect(harness.events(.signalRestored).count == 1)
  }

  @Test("a scale-down rule is vetoed by a missing signal, and the block says so")
  func missingVetoesRule() throws {
    let policy = try loadPolicy(
      """
      processes:
        model: {scaling: {metric: gpu, target: 70%, min: 1, max: 10}}
      autoscaling:
        model:
          scale_down:
            conditions: [{metric: queue < 5}]
            stabilization_window: 0s
      """)
    var harness = EngineHarness(policy, replicas: ["model": 4])
    harness.tick(at: 0, ["queue": 0])
    #expect(harness.replicas["model"] == 4)
    let blocked = try #require(harness.events(.blocked).first)
    #expect(blocked.reason == .signalMissing && blocked.to == 3)
    #expect(blocked.detail.contains("gpu has no value"))
    #expect(blocked.signals.map(\.name) == ["gpu", "queue"])
    #expect(blocked.signals.first?.value == nil)
  }

  @Test("a scale-up on the signals present goes ahead while another is missing")
  func scaleUpOnPresentSignal() throws {
    let policy = try loadPolicy(
      """
      processes:
        model: {scaling: {metric: gpu, target: 70%, min: 1, max: 10}}
      autoscaling:
        model:
          scale_up:
            conditions: [{metric: queue > 50}, {metric: p95 > 5s}]
            action: {add_instances: 2}
      """)
    var harness = EngineHarness(policy, replicas: ["model": 2])
    harness.tick(at: 0, ["queue": 80])
    #expect(harness.replicas["model"] == 4)
    #expect(harness.events(.scaleUp).first?.reason == .scaleUpRule)
  }

  @Test("scale_down: all conditions must hold for the duration; scale_up: any")
  func ruleDuration() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {metric: util, min: 1, max: 10}}
      autoscaling:
        w:
          scale_up:
            conditions: [{metric: queue > 50}, {metric: latency > 2s}]
          scale_down:
            conditions: [{metric: util < 20%}, {metric: queue < 5}, {duration: 1m}]
            stabilization_window: 0s
      """)
    var harness = EngineHarness(policy, replicas: ["w": 3])
    harness.tick(at: 0, ["util": 10, "queue": 1, "latency": 0.5])
    harness.tick(at: 30, ["util": 10, "queue": 1, "latency": 0.5])
    #expect(harness.replicas["w"] == 3)
    harness.tick(at: 45, ["util": 10, "queue": 9, "latency": 0.5])  // a break restarts the clock
    harness.tick(at: 60, ["util": 10, "queue": 1, "latency": 0.5])
    harness.tick(at: 105, ["util": 10, "queue": 1, "latency": 0.5])
    #expect(harness.replicas["w"] == 3)
    harness.tick(at: 120, ["util": 10, "queue": 1, "latency": 0.5])
    #expect(harness.replicas["w"] == 2)
    harness.tick(at: 135, ["util": 10, "queue": 1, "latency": 3])
    #expect(harness.replicas["w"] == 3)
  }

  @Test("a process with a metric but no target only moves into min..max")
  func noTarget() throws {
    let policy = try loadPolicy("processes:\n  web: {scaling: {metric: rate, min: 2, max: 5}}\n")
    var harness = EngineHarness(policy, replicas: ["web": 0])
    harness.tick(at: 0, ["rate": 1000])
    #expect(harness.replicas["web"] == 2)
    #expect(harness.events(.scaleUp).first?.reason == .minInstances)
    harness.tick(at: 15, ["rate": 1000])
    #expect(harness.replicas["web"] == 2)
  }

  @Test(
    "scale to zero with an activation threshold",
    arguments: [(1, 3.0, 0), (1, 5, 0), (0, 4, 0), (0, 6, 1), (0, 25, 3), (2, 0, 0)])
  func scaleToZero(start: Int, queue: Double, expected: Int) throws {
    let policy = try loadPolicy(
      """
      processes:
        jobs:
          class: batch
          scaling: {metric: queue, target: 10, activation_threshold: 5, min: 0, max: 5}
      autoscaling:
        jobs: {scale_up: {stabilization_window: 0s}, scale_down: {stabilization_window: 0s}}
      """)
    var harness = EngineHarness(policy, replicas: ["jobs": start])
    harness.tick(at: 0, ["queue": queue])
    #expect(harness.replicas["jobs"] == expected)
  }

  @Test("a batch process waits its scale-up window; an interactive one does not")
  func batchScaleUpWindow() throws {
    let policy = try loadPolicy(
      "processes:\n  jobs: {class: batch, scaling: {metric: queue, target: 10, min: 0, max: 5}}\n")
    var harness = EngineHarness(policy, replicas: ["jobs": 0])
    harness.tick(at: 0, ["queue": 30])
    harness.tick(at: 15, ["queue": 30])
    #expect(harness.replicas["jobs"] == 0)
    harness.tick(at: 30, ["queue": 30])
    #expect(harness.replicas["jobs"] == 3)
  }

  @Test("a block is written when it starts and when it changes, not every tick")
  func blockedDeduplicated() throws {
    let policy = try loadPolicy("processes:\n  w: {scaling: {metric: q, target: 10, min: 1, max: 4}}\n")
    var harness = EngineHarness(policy, replicas: ["w": 4])
    for second in stride(from: 0.0, through: 60, by: 15) { harness.tick(at: second, ["q": 100]) }
    #expect(harness.events(.blocked).count == 1)
    harness.tick(at: 75, ["q": 200])
    #expect(harness.events(.blocked).map(\.to) == [10, 20])
    // Wanted counts that alternate while the count stands are each written once.
    for (index, queue) in [100.0, 200, 100, 200, 100].enumerated() {
      harness.tick(at: 90 + Double(index) * 15, ["q": queue])
    }
    #expect(harness.events(.blocked).map(\.to) == [10, 20])
    // Once the count moves, a block is news again.
    harness.replicas["w"] = 3
    harness.tick(at: 180, ["q": 30])
    harness.tick(at: 195, ["q": 200])
    #expect(harness.events(.blocked).map(\.to) == [10, 20, 20], "\(harness.events.map(\.detail))")
    #expect(harness.state.targets["w"]?.blocksWritten?.count == 1)
  }

  @Test("the same inputs give the same decisions")
  func deterministic() throws {
    let policy = try loadPolicy(Self.utilizationPolicy)
    func run() -> [AuditEvent] {
      var harness = EngineHarness(policy, replicas: ["model": 3])
      for (index, value) in [90.0, 20, 150, 0, 71, 40].enumerated() {
        harness.tick(at: Double(index) * 15, ["gpu": value])
      }
      return harness.events
    }
    #expect(run() == run())
    #expect(!run().isEmpty)
  }

  @Test("a scale-down carries the policy's drain timeout")
  func drainTimeout() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {metric: q, target: 10, min: 1, max: 10}}
      autoscaling:
        w: {scale_down: {stabilization_window: 0s, action: {drain_timeout: 90s}}}
      """)
    var harness = EngineHarness(policy, replicas: ["w": 5])
    let decision = harness.tick(at: 0, ["q": 10])
    #expect(decision.actions.map(\.drainTimeout) == [90])
    #expect(decision.actions.first?.detail == decision.events.first?.detail)
  }

  @Test("someone else's change is reported once, adopted, and decided from")
  func externalChange() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {metric: q, target: 10, min: 1, max: 20}}
      autoscaling:
        w: {scale_down: {stabilization_window: 0s}}
      """)
    var harness = EngineHarness(policy, replicas: ["w": 2])
    harness.tick(at: 0, ["q": 40])
    #expect(harness.replicas["w"] == 4)
    // A person runs `kubectl scale --replicas=9`.
    harness.replicas["w"] = 9
    let decision = harness.tick(at: 15, ["q": 40])
    let changes = harness.events(.externalChange)
    #expect(changes.count == 1)
    #expect(changes.first?.from == 4)
    #expect(changes.first?.to == 9)
    #expect(changes.first?.reason == .externalChange)
    #expect(decision.actions.first?.from == 9)
    #expect(harness.replicas["w"] == 4)
    harness.tick(at: 30, ["q": 40])
    #expect(harness.events(.externalChange).count == 1)
  }

  @Test("a count that was never seen before is not an external change")
  func firstSightIsNotExternal() throws {
    var harness = EngineHarness(try loadPolicy(Self.utilizationPolicy), replicas: ["model": 3])
    harness.tick(at: 0, ["gpu": 70])
    harness.tick(at: 15, ["gpu": 70])
    #expect(harness.events(.externalChange).isEmpty)
  }
}
