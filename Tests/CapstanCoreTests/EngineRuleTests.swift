import Foundation
import Testing

@testable import CapstanCore

/// Engine rules checked by hand against docs/engine.md, the HPA and KEDA: which moves start a
/// cooldown, what a blocked record's `to` says, the budget day across a change of clocks.
@Suite("Engine rules")
struct EngineRuleTests {
  // MARK: Only the rules' own moves start their cooldown

  static let cooldownPolicy = """
    processes:
      w: {scaling: {metric: jobs, target: 10, min: 2, max: 10}}
    autoscaling:
      w:
        scale_up:
          conditions: [{metric: jobs > 20}]
          action: {add_instances: 1, cooldown: 10m}
    """

  @Test("a scale-up that min made does not start the rules' cooldown; the rules' own does")
  func minDoesNotStartCooldown() throws {
    var harness = EngineHarness(try loadPolicy(Self.cooldownPolicy), replicas: ["w": 0])
    harness.tick(at: 0, ["jobs": 35])
    #expect(harness.replicas["w"] == 2)
    #expect(harness.events(.scaleUp).last?.reason == .minInstances)
    // Under load, the next tick grows by the rule's step at once.
    harness.tick(at: 15, ["jobs": 35])
    #expect(harness.replicas["w"] == 3)
    // That move was the rules': their cooldown holds the next one.
    harness.tick(at: 30, ["jobs": 35])
    #expect(harness.replicas["w"] == 3)
    #expect(harness.events(.blocked).last?.reason == .cooldown)
    harness.tick(at: 15 + 600, ["jobs": 35])
    #expect(harness.replicas["w"] == 4)
  }

  @Test("a scale-down that a lowered max made does not start the scale-down cooldown")
  func maxDoesNotStartCooldown() throws {
    let policy = try loadPolicy(
      """
      processes:
        w: {scaling: {metric: jobs, target: 10, min: 1, max: 4}}
      autoscaling:
        w:
          scale_down:
            conditions: [{metric: jobs < 5}]
            action: {remove_instances: 1, cooldown: 10m}
            stabilization_window: 0s
      """)
    var harness = EngineHarness(policy, replicas: ["w": 8])
    harness.tick(at: 0, ["jobs": 30])
    #expect(harness.replicas["w"] == 4)
    #expect(harness.events(.scaleDown).last?.reason == .maxInstances)
    harness.tick(at: 15, ["jobs": 1])
    #expect(harness.replicas["w"] == 3)
    harness.tick(at: 30, ["jobs": 1])
    #expect(harness.replicas["w"] == 3)
    #expect(harness.events(.blocked).last?.reason == .cooldown)
  }
}
