import Foundation
import PropertyBased
import Testing

@testable import CapstanCore

/// The engine's order of work, one scenario per rule: missing data, readiness, the [min, max]
/// bound, the ways to zero, and activation before tolerance.
@Suite("Engine correctness")
struct EngineCorrectnessTests {
  // MARK: Missing data vetoes every scale-down

  @Test("a signal missing from a scale_up rule vetoes a scale_down rule, with one record")
  func missingScaleUpSignalVetoes() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {min: 1, max: 10}}
      autoscaling:
        w:
          scale_up: {conditions: [{metric: queue > 50}]}
          scale_down: {conditions: [{metric: cpu < 20%}], stabilization_window: 0s}
      """)
    var harness = EngineHarness(policy, replicas: ["w": 5])
    for second in stride(from: 0.0, through: 120, by: 15) { harness.tick(at: second, ["cpu": 10]) }
    #expect(harness.replicas["w"] == 5)
    #expect(harness.events(.scaleDown).isEmpty)
    let blocked = harness.events(.blocked)
    #expect(blocked.count == 1)
    #expect(blocked.first?.reason == .signalMissing)
    #expect(blocked.first?.to == 4)
    #expect(blocked.first?.detail.contains("queue has no value") == true)
    // The signal comes back below its threshold: the scale-down goes ahead.
    harness.tick(at: 135, ["cpu": 10, "queue": 0])
    #expect(harness.replicas["w"] == 4)
  }

  @Test("a match: any scale_down rule does not fire with one of its conditions missing")
  func matchAnyMissing() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {min: 1, max: 10}}
      autoscaling:
        w:
          scale_down:
            conditions: [{metric: cpu < 20%}, {metric: queue < 5}]
            match: any
            stabilization_window: 0s
      """)
    var harness = EngineHarness(policy, replicas: ["w": 5])
    harness.tick(at: 0, ["cpu": 10])
    #expect(harness.replicas["w"] == 5)
    #expect(harness.events(.blocked).map(\.reason) == [.signalMissing])
    harness.tick(at: 15, ["cpu": 10, "queue": 50])
    #expect(harness.replicas["w"] == 4)
  }

  @Test("the shipped llm-serving policy keeps inference while its queue and latency are blank")
  func shippedPolicyBlankSignals() throws {
    let url = fixturesURL().appendingPathComponent("../../../policies/llm-serving.yaml").standardized
    let policy = try PolicyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path).policy
    var harness = EngineHarness(policy, replicas: ["inference": 4])
    for second in stride(from: 0.0, through: 1_800, by: 15) {
      harness.tick(at: second, ["gpu_utilization": 30])
    }
    #expect(harness.replicas["inference"] == 4)
    #expect(harness.events(.scaleDown).filter { $0.process == "inference" }.isEmpty)
  }

  // MARK: Readiness

  static let readinessPolicy = """
    processes:
      model: {scaling: {metric: gpu, target: 70%, min: 1, max: 20}}
    autoscaling:
      model: {scale_down: {stabilization_window: 0s}}
    """

  struct ReadinessCase: CustomTestStringConvertible, Sendable {
    var current: Int
    var ready: Int
    var value: Double
    var expected: Int
    var testDescription: String { "\(ready) of \(current) ready at \(value)% → \(expected)" }
  }

  @Test(
    "replicas not ready count as 0% on a scale-up and at the target on a scale-down; a flip holds",
    arguments: [
      // The case: overloaded, and not a scale-down.
      ReadinessCase(current: 8, ready: 4, value: 80, expected: 8),
      // 6 × 140 / 70 = 12 on the ready ones; the 2 starting count as 0%: 8 × 105 / 70 = 12.
      ReadinessCase(current: 8, ready: 6, value: 140, expected: 12),
      // Scale-down: (4 × 30 + 4 × 70) / 8 = 50% → ceil(8 × 50 / 70) = 6, not ceil(4 × 30 / 70) = 2.
      ReadinessCase(current: 8, ready: 4, value: 30, expected: 6),
      // Inside the band once the starting ones count: no change.
      ReadinessCase(current: 8, ready: 7, value: 62, expected: 8),
      // All ready: the plain formula.
      ReadinessCase(current: 8, ready: 8, value: 35, expected: 4),
      // None ready: nothing to judge.
      ReadinessCase(current: 8, ready: 0, value: 99, expected: 8),
    ])
  func readiness(_ item: ReadinessCase) throws {
    var harness = EngineHarness(try loadPolicy(Self.readinessPolicy), replicas: ["model": item.current])
    harness.ready["model"] = item.ready
    harness.tick(at: 0, ["gpu": item.value])
    #expect(harness.replicas["model"] == item.expected)
  }

  @Test("a hold for replicas still starting says why, once")
  func readinessHoldExplains() throws {
    var harness = EngineHarness(try loadPolicy(Self.readinessPolicy), replicas: ["model": 8])
    harness.ready["model"] = 4
    harness.tick(at: 0, ["gpu": 80])
    harness.tick(at: 15, ["gpu": 80])
    #expect(harness.replicas["model"] == 8)
    let blocked = harness.events(.blocked)
    #expect(blocked.count == 1)
    #expect(blocked.first?.reason == .replicasNotReady)
    #expect(blocked.first?.to == 5)
    #expect(blocked.first?.detail.contains("4 of 8 replicas not ready yet count as 0%") == true)
  }

  // MARK: [min, max] last

  @Test("a count above max drops to max on the first tick, with no step or cooldown in the way")
  func maxBindsAtOnce() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {metric: q, target: 10, min: 1, max: 4}}
      autoscaling:
        w: {scale_down: {action: {remove_instances: 1, cooldown: 10m}}}
      """)
    var harness = EngineHarness(policy, replicas: ["w": 10])
    harness.tick(at: 0, ["q": 100])
    #expect(harness.replicas["w"] == 4)
    #expect(harness.events(.scaleDown).first?.reason == .maxInstances)
  }

  @Test("a batch process started at 0 with min 3 runs 3 on the first tick, not after its window")
  func minBindsAtOnce() throws {
    let policy = try loadPolicy(
      "processes:\n  jobs: {class: batch, scaling: {metric: queue, target: 10, min: 3, max: 5}}\n")
    var harness = EngineHarness(policy, replicas: ["jobs": 0])
    harness.tick(at: 0, ["queue": 0])
    #expect(harness.replicas["jobs"] == 3)
    #expect(harness.events(.scaleUp).first?.reason == .minInstances)
  }

  @Test("an interactive process found at 0 with a 2-minute scale-up window gets min at once")
  func minOverScaleUpWindow() throws {
    let policy = try loadPolicy(
      """
      processes:
        web: {scaling: {metric: q, target: 10, min: 2, max: 8}}
      autoscaling:
        web: {scale_up: {stabilization_window: 2m}}
      """)
    var harness = EngineHarness(policy, replicas: ["web": 0])
    harness.tick(at: 0, ["q": 5])
    #expect(harness.replicas["web"] == 2)
  }

  @Test("a cooldown never holds a process below min")
  func cooldownBelowMin() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {metric: q, target: 10, min: 2, max: 8}}
      autoscaling:
        w: {scale_up: {action: {cooldown: 10m}}}
      """)
    var harness = EngineHarness(policy, replicas: ["w": 2])
    harness.tick(at: 0, ["q": 40])
    #expect(harness.replicas["w"] == 4)
    // The pool is emptied (a crash, a restart) inside the cooldown.
    harness.replicas["w"] = 0
    harness.tick(at: 60, ["q": 40])
    #expect(harness.replicas["w"] == 2)
    let up = try #require(harness.events(.scaleUp).last)
    #expect(up.reason == .minInstances)
    #expect(up.detail.hasPrefix("min is 2"))
    // The rest of the way waits out the cooldown, and the block says so.
    #expect(harness.events(.blocked).last?.reason == .cooldown)
    #expect(harness.events(.blocked).last?.to == 4)
  }

  @Test("a reload that lowers max binds on the next tick, whatever the window remembers")
  func reloadLowersMax() throws {
    let before = try loadPolicy("processes:\n  w: {scaling: {metric: q, target: 10, min: 1, max: 10}}\n")
    let after = try loadPolicy("processes:\n  w: {scaling: {metric: q, target: 10, min: 1, max: 4}}\n")
    var harness = EngineHarness(before, replicas: ["w": 2])
    harness.tick(at: 0, ["q": 80])
    #expect(harness.replicas["w"] == 8)
    var reloaded = EngineHarness(after, replicas: harness.replicas)
    reloaded.state = harness.state
    reloaded.tick(at: 15, ["q": 80])
    #expect(reloaded.replicas["w"] == 4)
    #expect(reloaded.state.targets["w"]?.recommendations.allSatisfy { $0.replicas <= 8 } == true)
    reloaded.tick(at: 30, ["q": 80])
    #expect(reloaded.state.targets["w"]?.recommendations.last?.replicas == 4)
  }

  // MARK: The ways to zero

  @Test("min_instances: 0 on a utilization target is refused: it could never come back")
  func minInstancesZeroUtilization() {
    let yaml = """
      processes:
        gpu-batch:
          class: batch
          scaling: {metric: gpu, target: 70%, min: 1, max: 4}
      autoscaling:
        gpu-batch:
          scale_down:
            constraints: [{min_instances: 0}]
      """
    #expect {
      try PolicyLoader.load(yaml: yaml, file: "p.yaml")
    } throws: { error in
      "\(error)".contains("p.yaml:8:") && "\(error)".contains("would never come back")
    }
  }

  @Test("a process that may reach 0 with nothing to wake it is refused")
  func zeroWithNoWaker() {
    let yaml = """
      processes:
        jobs:
          class: batch
          scaling: {min: 0, max: 4}
      autoscaling:
        jobs:
          scale_down: {conditions: [{metric: queue < 1}]}
      """
    #expect {
      try PolicyLoader.load(yaml: yaml, file: "p.yaml")
    } throws: { error in
      "\(error)".contains("p.yaml:2:3:") && "\(error)".contains("nothing can bring it back")
    }
  }

  // MARK: Activation before tolerance

  @Test("under the activation threshold no replica is needed, inside the tolerance band or not")
  func activationBeforeTolerance() throws {
    let policy = try loadPolicy(
      """
      processes:
        jobs:
          class: batch
          scaling: {metric: queue, target: 10, activation_threshold: 50, min: 0, max: 10}
      autoscaling:
        jobs: {scale_up: {stabilization_window: 0s}, scale_down: {stabilization_window: 0s}}
      """)
    for queue in [40.0, 45] {
      var harness = EngineHarness(policy, replicas: ["jobs": 4])
      harness.tick(at: 0, ["queue": queue])
      #expect(harness.replicas["jobs"] == 0, "queue \(queue)")
    }
  }

  // MARK: More load never means fewer replicas

  /// One tick's count for a load, from the same state, with every window off.
  static func proposal(_ policy: Policy, current: Int, ready: Int, signal: String, value: Double) -> Int {
    let name = policy.targets[0].name
    var state = EngineState()
    state.targets[name] = TargetState()
    state.targets[name]?.lastScaleUp = t0.addingTimeInterval(-86_400)  // not a first sight: no window seeded
    let (decision, _) = ScalingEngine(policy: policy).decide(
      EngineInputs(signals: [signal: value], replicas: [name: ReplicaStatus(current: current, ready: ready)]),
      state: state, now: t0)
    return decision.actions.first?.to ?? current
  }

  static let monotonePolicies: [(yaml: String, signal: String)] = [
    (
      """
      processes:
        m: {scaling: {metric: gpu, target: 70%, min: 1, max: 1000}}
      autoscaling:
        m: {scale_down: {stabilization_window: 0s}}
      """, "gpu"
    ),
    (
      """
      processes:
        q:
          class: batch
          scaling: {metric: queue, target: 10, activation_threshold: 50, min: 0, max: 1000}
      autoscaling:
        q: {scale_up: {stabilization_window: 0s}, scale_down: {stabilization_window: 0s}}
      """, "queue"
    ),
    (
      """
      processes:
        r: {scaling: {metric: queue, target: 25, tolerance: 20%, min: 2, max: 1000}}
      autoscaling:
        r:
          scale_up: {conditions: [{metric: queue > 400}], action: {add_instances: 3}}
          scale_down: {conditions: [{metric: queue < 10}], stabilization_window: 0s}
      """, "queue"
    ),
  ]

  @Test("the decided count is monotone in load, for every kind of signal")
  func monotoneInLoad() async throws {
    let policies = try Self.monotonePolicies.map { (try loadPolicy($0.yaml), $0.signal) }
    await propertyCheck(
      // Small counts and loads near the thresholds, where the activation, tolerance and
      // readiness rules meet.
      count: 2_000, input: Gen.int(in: 0...12), Gen.int(in: 0...12), Gen.double(in: 0...300),
      Gen.double(in: 0...300)
    ) { current, readyGap, a, b in
      let ready = max(0, current - readyGap)
      for (policy, signal) in policies {
        let low = Self.proposal(policy, current: current, ready: ready, signal: signal, value: min(a, b))
        let high = Self.proposal(policy, current: current, ready: ready, signal: signal, value: max(a, b))
        #expect(low <= high, "\(policy.targets[0].name): \(current) replicas, \(ready) ready")
      }
    }
  }
}

@Suite("Inputs by name and by position")
struct IndexedInputsTests {
  @Test("decide(IndexedInputs) makes the same decisions and states as decide(EngineInputs), records included")
  func sameDecisions() throws {
    let text = try String(
      contentsOf: fixturesURL().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("policies/llm-serving.yaml"), encoding: .utf8)
    let engine = ScalingEngine(policy: try PolicyLoader.load(yaml: text, file: "llm-serving.yaml").policy)
    var byName = EngineState()
    var byPosition = EngineState()
    var replicas = ["inference": 2, "agent-worker": 1]
    var kinds: Set<AuditEventKind> = []
    for tick in 0..<400 {
      // Load that swings, with a signal missing now and then, so rules, windows, ceilings,
      // outages and the budget all act.
      var signals: [String: Double] = [
        "gpu_utilization": Double((tick * 37) % 100), "request_queue_depth": Double((tick * 13) % 80),
        "p95_latency": Double(tick % 9), "queue_depth": Double((tick * 101) % 4_000),
        "oldest_message_age": Double(tick % 400), "llm_cost_usd_per_hour": Double(tick % 60),
      ]
      if tick % 17 == 0 { signals["queue_depth"] = nil }
      let status = replicas.mapValues { ReplicaStatus($0) }
      let now = t0.addingTimeInterval(Double(tick) * 60)
      let (first, nextByName) = engine.decide(
        EngineInputs(signals: signals, replicas: status), state: byName, now: now)
      let (second, nextByPosition) = engine.decide(
        IndexedInputs(
          signals: engine.signalOrder.map { signals[$0] },
          replicas: engine.policy.targets.map { status[$0.name] }), state: byPosition, now: now)
      #expect(first == second, "tick \(tick)")
      #expect(nextByName == nextByPosition, "tick \(tick)")
      byName = nextByName
      byPosition = nextByPosition
      for action in first.actions { replicas[action.process] = action.to }
      kinds.formUnion(first.events.map(\.kind))
    }
    #expect(!byName.budgets.isEmpty && byName.targets.count == 2)
    #expect(
      kinds.isSuperset(of: [.scaleUp, .scaleDown, .blocked, .signalMissing, .signalRestored]), "\(kinds)")
  }
}
