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
        #"{"targets":{"w":{"recommendations":[],"blocksWritten":["#
          + Array(repeating: #"{"reason":"cooldown","wanted":2}"#, count: 9).joined(separator: ",")
          + #"]}},"budgets":{},"missingSignals":[]}"#,
        "w.blocksWritten holds 9 blocks"
      ),
      (
        #"{"targets":{"w":{"recommendations":[{"time":0,"replicas":-1}]}},"budgets":{},"missingSignals":[]}"#,
        "w.recommendations.replicas"
      ),
      // A budget day that ended at 1970 would write a reset per day since; one far ahead would
      // keep a frozen budget frozen for good.
      (
        #"{"targets":{},"budgets":{"w":{"spentUSD":1,"state":"ok","dayStart":1700006400,"dayEnd":0}},"missingSignals":[]}"#,
        "w.dayEnd is 0"
      ),
      (
        #"{"targets":{},"budgets":{"w":{"spentUSD":1,"state":"frozen","dayStart":1700006400,"dayEnd":1e18}},"missingSignals":[]}"#,
        "w.dayEnd"
      ),
      (
        #"{"targets":{},"budgets":{"w":{"spentUSD":1,"state":"ok","dayEnd":1700006400}},"missingSignals":[]}"#,
        "without the other"
      ),
      // A period after today's would make every new value look too old to keep.
      (
        #"{"targets":{},"budgets":{},"missingSignals":[],"forecasts":{"w":{"history":{"periods":[{"index":999999,"peaks":[1]}]},"shape":"86400/300/GMT"}}}"#,
        "w.history has period 999999"
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

@Suite("Recommendation runs")
struct RecommendationRunTests {
  @Test(
    "a steady recommendation is one entry however many ticks the window spans; changes add entries; entries the window has passed go"
  )
  func runs() throws {
    let policy = try loadPolicy(
      """
      controller: {interval: 1s}
      processes:
        w: {class: batch, scaling: {metric: q, target: 10, min: 0, max: 20}}
      """)
    var harness = EngineHarness(policy, replicas: ["w": 3])
    for second in 0..<1_200 { harness.tick(at: Double(second), ["q": 30]) }
    // A batch process's scale-down window is 600 s: 600 ticks of the same 3, kept as one run.
    #expect(harness.state.targets["w"]?.recommendations.count == 1)
    harness.tick(at: 1_200, ["q": 50])
    harness.tick(at: 1_201, ["q": 30])
    #expect(harness.state.targets["w"]?.recommendations.map(\.replicas) == [3, 5, 3])
    // Once the window has passed them, the older runs go: the state holds what a window sees.
    for second in 1_202...1_801 { harness.tick(at: Double(second), ["q": 30]) }
    #expect(harness.state.targets["w"]?.recommendations.map(\.replicas) == [3])
  }
}
