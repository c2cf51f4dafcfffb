import Foundation
import Testing

@testable import CapstanCore

@Suite("Saved state")
struct SavedStateTests {
  func decode(_ json: String) throws -> EngineState {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .secondsSince1970
    return try decoder.decode(EngineState.self, from: Data(json.utf8))
  }

  @Test(
    "values out of range are named, so the file is refused rather than holding the pool",
    arguments: [
      (
        #"{"targets":{"w":{"recommendations":[],"lastScaleUp":1e300}},"budgets":{},"missingSignals":[]}"#,
        "w.lastScaleUp"
      ),
      (
        #"{"targets":{"w":{"recommendations":[],"lastReplicas":-3}},"budgets":{},"missingSignals":[]}"#,
        "w.lastReplicas is -3"
      ),
      (#"{"targets":{},"budgets":{"w":{"spentUSD":-1e308,"state":"ok"}},"missingSignals":[]}"#, "w.spentUSD"),
      (
        #"{"targets":{"w":{"recommendations":[{"time":0,"replicas":-1}]}},"budgets":{},"missingSignals":[]}"#,
        "w.recommendations.replicas"
      ),
    ])
  func outOfRange(json: String, named: String) throws {
    let problems = try decode(json).problems(now: t0)
    #expect(problems.count == 1)
    #expect(problems.first?.contains(named) == true, "\(problems)")
  }

  @Test("a state the engine wrote has no problems")
  func sound() throws {
    let policy = try loadPolicy(
      "processes:\n  w: {cost_per_hour_usd: 2, scaling: {metric: q, target: 10, min: 1, max: 5}}\nautoscaling:\n  w: {cost_circuit_breaker: {daily_budget_usd: 100}}\n"
    )
    var harness = EngineHarness(policy, replicas: ["w": 1])
    harness.tick(at: 0, ["q": 40])
    harness.tick(at: 15, ["q": 0])
    #expect(harness.state.problems(now: t0.addingTimeInterval(15)).isEmpty)
    #expect(!harness.state.targets.isEmpty && !harness.state.budgets.isEmpty)
  }
}
