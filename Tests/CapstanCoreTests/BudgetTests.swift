import Foundation
import Testing

@testable import CapstanCore

@Suite("Budget circuit breaker")
struct BudgetTests {
  static func policy(timezone: String = "UTC") throws -> Policy {
    try loadPolicy(
      """
      processes:
        gpu:
          cost_per_hour_usd: 100
          scaling: {metric: q, target: 10, min: 1, max: 20}
      autoscaling:
        gpu:
          scale_down: {stabilization_window: 0s}
          cost_circuit_breaker:
            daily_budget_usd: 2000
            alert_threshold: 0.80
            action_threshold: 0.95
            action: freeze_scaling
            timezone: \(timezone)
      """)
  }

  /// Seconds from t0 to the next 22:00 UTC, where the tests start their day's last two hours.
  static let start: TimeInterval = {
    let day = 86_400.0
    let secondsIntoDay = t0.timeIntervalSince1970.truncatingRemainder(dividingBy: day)
    return 22 * 3600 - secondsIntoDay + (secondsIntoDay > 22 * 3600 ? day : 0)
  }()

  @Test("alert at the alert threshold, freeze scale-ups at the action threshold, reset at midnight")
  func alertFreezeReset() throws {
    // 10 replicas at $100/h spend $1000/h from 22:00: $1600 (alert) at 23:36, $1900 (freeze) at 23:54.
    var harness = EngineHarness(try Self.policy(), replicas: ["gpu": 10])
    var minute = 0.0
    while minute <= 130 {
      harness.tick(at: Self.start + minute * 60, ["q": 100])
      minute += 1
    }
    let alert = try #require(harness.events(.budgetAlert).first)
    let freeze = try #require(harness.events(.budgetFreeze).first)
    let reset = try #require(harness.events(.budgetReset).first)
    #expect(alert.time == t0.addingTimeInterval(Self.start + 96 * 60))
    #expect(freeze.time == t0.addingTimeInterval(Self.start + 114 * 60))
    #expect(reset.time == t0.addingTimeInterval(Self.start + 120 * 60))
    #expect(freeze.budget?.state == .frozen && freeze.budget?.limitUSD == 2000)
    #expect(abs((freeze.budget?.spentUSD ?? 0) - 1900) < 1e-6)
    #expect(reset.detail.contains("the day before spent $2000.00"))
    #expect(harness.events(.budgetAlert).count == 1)
  }

  @Test("a frozen budget blocks scale-ups but not scale-downs")
  func frozenBlocksUpOnly() throws {
    var harness = EngineHarness(try Self.policy(), replicas: ["gpu": 10])
    for minute in 0...115 { harness.tick(at: Self.start + Double(minute) * 60, ["q": 100]) }
    #expect(harness.state.budgets["gpu"]?.state == .frozen)
    harness.tick(at: Self.start + 116 * 60, ["q": 150])
    #expect(harness.replicas["gpu"] == 10)
    #expect(harness.events(.blocked).last?.reason == .budgetFrozen)
    harness.tick(at: Self.start + 117 * 60, ["q": 50])
    #expect(harness.replicas["gpu"] == 5)
    // The next budget day lifts the freeze.
    for minute in 118...121 { harness.tick(at: Self.start + Double(minute) * 60, ["q": 50]) }
    harness.tick(at: Self.start + 122 * 60, ["q": 150])
    #expect(harness.replicas["gpu"] == 15)
  }

  @Test("the budget day starts at midnight in the breaker's time zone")
  func timeZoneDay() throws {
    // In November New York is UTC-5: its day starts at 05:00 UTC, not at 00:00.
    var harness = EngineHarness(try Self.policy(timezone: "America/New_York"), replicas: ["gpu": 1])
    for minute in stride(from: 0.0, through: 8 * 60, by: 15) {
      harness.tick(at: Self.start + minute * 60, ["q": 10])
    }
    let resets = harness.events(.budgetReset)
    #expect(resets.count == 1)
    #expect(resets.first?.time == t0.addingTimeInterval(Self.start + 7 * 3600))
  }

  @Test("the cost-rate metric is integrated, and carried over a gap")
  func costRateMetric() throws {
    let breaker = CostCircuitBreaker(
      dailyBudgetUSD: 1000, alertThreshold: 0.8, actionThreshold: 0.95, costRateMetric: "llm",
      timeZone: TimeZone(identifier: "UTC")!)
    var ledger = BudgetLedger()
    let noon = Date(timeIntervalSince1970: 1_700_049_600)  // 2023-11-15T12:00:00Z
    _ = ledger.advance(to: noon, replicas: 2, costPerHourUSD: 10, costRate: 60, breaker: breaker)
    _ = ledger.advance(
      to: noon.addingTimeInterval(1800), replicas: 2, costPerHourUSD: 10, costRate: 60, breaker: breaker)
    #expect(abs(ledger.spentUSD - 40) < 1e-9)  // (2 × 10 + 60) × 0.5 h
    _ = ledger.advance(
      to: noon.addingTimeInterval(3600), replicas: 2, costPerHourUSD: 10, costRate: nil, breaker: breaker)
    #expect(abs(ledger.spentUSD - 80) < 1e-9)  // the missing sample carries 60 forward
  }

  @Test("a day boundary inside one interval splits the spend between the days")
  func splitInterval() {
    let breaker = CostCircuitBreaker(
      dailyBudgetUSD: 1000, alertThreshold: 0.8, actionThreshold: 0.95, costRateMetric: nil,
      timeZone: TimeZone(identifier: "UTC")!)
    var ledger = BudgetLedger()
    let beforeMidnight = Date(timeIntervalSince1970: 1_700_092_800 - 1800)  // 2023-11-15T23:30:00Z
    _ = ledger.advance(to: beforeMidnight, replicas: 1, costPerHourUSD: 100, costRate: nil, breaker: breaker)
    let events = ledger.advance(
      to: beforeMidnight.addingTimeInterval(3600), replicas: 1, costPerHourUSD: 100, costRate: nil,
      breaker: breaker)
    #expect(events == [.reset(previousSpent: 50, dayStart: Date(timeIntervalSince1970: 1_700_092_800))])
    #expect(abs(ledger.spentUSD - 50) < 1e-9)
  }
}
