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

@Suite("Budget days")
struct BudgetDayTests {
  static func utc(_ text: String) -> Date { (try? Date(text, strategy: .iso8601)) ?? .distantPast }

  static func breaker(_ budget: Double, _ timeZone: TimeZone) -> CostCircuitBreaker {
    CostCircuitBreaker(dailyBudgetUSD: budget, alertThreshold: 0.8, actionThreshold: 0.95, timeZone: timeZone)
  }

  @Test("where clocks skip midnight the day starts at 01:00, and the next day still starts at its midnight")
  func skippedMidnight() throws {
    // America/Santiago on 2023-09-03: 00:00 (UTC-4) becomes 01:00 (UTC-3), a day of 23 hours.
    let breaker = Self.breaker(1000, try #require(TimeZone(identifier: "America/Santiago")))
    var ledger = BudgetLedger()
    var resets: [(spent: Double, start: Date)] = []
    var now = Self.utc("2023-09-02T16:00:00Z")
    while now <= Self.utc("2023-09-05T06:00:00Z") {
      for event in ledger.advance(to: now, replicas: 1, costPerHourUSD: 1, costRate: nil, breaker: breaker) {
        if case .reset(let spent, let start) = event { resets.append((spent, start)) }
      }
      now = now.addingTimeInterval(900)
    }
    #expect(
      resets.map(\.start)
        == ["2023-09-03T04:00:00Z", "2023-09-04T03:00:00Z", "2023-09-05T03:00:00Z"].map(Self.utc))
    // The short day spent 23 hours at $1 an hour; the day after, 24.
    #expect(resets.count == 3 && abs(resets[1].spent - 23) < 1e-6 && abs(resets[2].spent - 24) < 1e-6)
  }

  @Test("a gap of a week closes the day it was in and starts today's: two resets, not seven")
  func longGap() throws {
    let breaker = Self.breaker(100, .gmt)
    var ledger = BudgetLedger()
    _ = ledger.advance(
      to: Self.utc("2023-09-01T12:00:00Z"), replicas: 1, costPerHourUSD: 1, costRate: nil, breaker: breaker)
    let events = ledger.advance(
      to: Self.utc("2023-09-08T12:00:00Z"), replicas: 1, costPerHourUSD: 1, costRate: nil, breaker: breaker)
    let starts = events.compactMap { event -> Date? in
      if case .reset(_, let start) = event { return start }
      return nil
    }
    #expect(starts == ["2023-09-02T00:00:00Z", "2023-09-08T00:00:00Z"].map(Self.utc))
    #expect(ledger.dayEnd == Self.utc("2023-09-09T00:00:00Z"))
    #expect(abs(ledger.spentUSD - 12) < 1e-6)
  }
}
