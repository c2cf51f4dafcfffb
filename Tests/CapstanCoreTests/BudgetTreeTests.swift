import Foundation
import Testing

@testable import CapstanCore

@Suite("Budgets that nest")
struct BudgetTreeTests {
  /// Two tenants under an organisation, a worker pool each.
  static func policy(
    org: String = "{daily_budget_usd: 10000}",
    acme: String = "{parent: org, daily_budget_usd: 100}",
    globex: String = "{parent: org, daily_budget_usd: 100}",
    acmeCost: Double = 1, globexCost: Double = 1, gpus: Int = 0, extra: String = ""
  ) throws -> Policy {
    try loadPolicy(
      """
      budgets:
        org: \(org)
        acme: \(acme)
        globex: \(globex)
      processes:
        acme-agents:
          budget: acme
          cost_per_hour_usd: \(acmeCost)
          resources: {gpu: \(gpus)}
          scaling: {metric: qa, target: 10, min: 1, max: 40}
        globex-agents:
          budget: globex
          cost_per_hour_usd: \(globexCost)
          resources: {gpu: \(gpus)}
          scaling: {metric: qg, target: 10, min: 1, max: 40}
      \(extra)
      """)
  }

  static func ticks(
    _ harness: inout EngineHarness, from: TimeInterval = 0, minutes: ClosedRange<Int>,
    _ signals: [String: Double]
  ) {
    for second in stride(from: minutes.lowerBound * 60, through: minutes.upperBound * 60, by: 15) {
      harness.tick(at: from + Double(second), signals)
    }
  }

  @Test("a tenant's freeze stops its own scale-ups and leaves its sibling scaling")
  func childFreeze() throws {
    // acme's $1 day at $60 an hour is spent in a minute; globex spends $1 an hour of $100.
    var harness = EngineHarness(
      try Self.policy(acme: "{parent: org, daily_budget_usd: 1}", acmeCost: 60),
      replicas: ["acme-agents": 1, "globex-agents": 1])
    Self.ticks(&harness, minutes: 0...3, ["qa": 5, "qg": 5])
    #expect(harness.state.budgetTree["acme"]?.frozen == true)
    #expect(harness.state.budgetTree["globex"]?.frozen == false)
    #expect(harness.state.budgetTree["org"]?.frozen == false)
    let freeze = try #require(harness.events(.budgetFreeze).first)
    #expect(freeze.process == "*" && freeze.namedBudget?.name == "acme" && freeze.namedBudget?.frozen == true)
    #expect(harness.state.budgetTree["acme"]?.health == .exceeded)
    #expect(harness.state.budgetTree["globex"]?.health == .healthy)

    Self.ticks(&harness, minutes: 4...4, ["qa": 50, "qg": 50])
    #expect(harness.replicas == ["acme-agents": 1, "globex-agents": 5])
    let blocked = try #require(harness.events(.blocked).last { $0.process == "acme-agents" })
    #expect(blocked.reason == .budgetFrozen)
    #expect(blocked.detail.contains("budget 'acme' is frozen"))
    // Spend accrues up the tree: the organisation's day holds both tenants'.
    let org = try #require(harness.state.budgetTree["org"]?.day)
    let acme = try #require(harness.state.budgetTree["acme"]?.day)
    let globex = try #require(harness.state.budgetTree["globex"]?.day)
    #expect(abs(org.spentUSD - acme.spentUSD - globex.spentUSD) < 1e-9)
    #expect(org.byProcess.keys.sorted() == ["acme-agents", "globex-agents"])
  }

  @Test("the organisation's freeze stops the scale-ups of both tenants, and its records name it")
  func parentFreeze() throws {
    var harness = EngineHarness(
      try Self.policy(org: "{daily_budget_usd: 1}", acmeCost: 60, globexCost: 60),
      replicas: ["acme-agents": 1, "globex-agents": 1])
    Self.ticks(&harness, minutes: 0...2, ["qa": 5, "qg": 5])
    #expect(harness.state.budgetTree["org"]?.frozen == true)
    #expect(harness.state.budgetTree["acme"]?.frozen == false)
    Self.ticks(&harness, minutes: 3...3, ["qa": 50, "qg": 50])
    #expect(harness.replicas == ["acme-agents": 1, "globex-agents": 1])
    for process in ["acme-agents", "globex-agents"] {
      let blocked = try #require(harness.events(.blocked).last { $0.process == process })
      #expect(blocked.reason == .budgetFrozen && blocked.detail.contains("budget 'org' is frozen"))
    }
  }

  @Test(
    "the day ends at midnight in the tree's time zone, for the tenant that inherits it too, and lifts the freeze"
  )
  func midnight() throws {
    // 2023-11-15T07:40Z is 23:40 in Los Angeles (UTC-8 in November): acme's $1 day at $10 an
    // hour is spent by 23:46; the day turns at 08:00Z.
    let start: TimeInterval = 34_000
    var harness = EngineHarness(
      try Self.policy(
        org: "{daily_budget_usd: 10000, timezone: America/Los_Angeles}",
        acme: "{parent: org, daily_budget_usd: 1}", acmeCost: 10),
      replicas: ["acme-agents": 1, "globex-agents": 1])
    Self.ticks(&harness, from: start, minutes: 0...15, ["qa": 5, "qg": 5])
    #expect(harness.state.budgetTree["acme"]?.frozen == true)
    Self.ticks(&harness, from: start, minutes: 16...21, ["qa": 5, "qg": 5])
    let resets = harness.events(.budgetReset)
    #expect(resets.compactMap(\.namedBudget?.name).sorted() == ["acme", "globex", "org"])
    #expect(resets.allSatisfy { $0.time == t0.addingTimeInterval(start + 20 * 60) })
    #expect(harness.state.budgetTree["acme"]?.frozen == false)
    // The day that ended is kept whole, hour by hour: 23:00 to 24:00 local is its last hour.
    let ended = try #require(harness.state.budgetTree["acme"]?.previousDay)
    #expect(ended.byHour.count == 24 && abs(ended.byHour[23] - ended.spentUSD) < 1e-9)
    #expect(abs(ended.spentUSD - 20.0 / 60 * 10) < 1e-9)
    Self.ticks(&harness, from: start, minutes: 22...22, ["qa": 50, "qg": 5])
    #expect(harness.replicas["acme-agents"] == 5)
  }

  @Test("a burst meets the organisation's max_gpus: the room goes by weight, never first come first served")
  func dividedByWeight() throws {
    let policy = try Self.policy(
      org: "{daily_budget_usd: 10000, max_gpus: 12}", acme: "{parent: org, daily_budget_usd: 100, weight: 2}",
      globex: "{parent: org, daily_budget_usd: 100, weight: 1}", gpus: 1)
    // Both ask for 20 GPUs at once: 12 go 8 to 4 (first come first served, acme, first in
    // the file, would take 11).
    var harness = EngineHarness(policy, replicas: ["acme-agents": 1, "globex-agents": 1])
    harness.tick(at: 0, ["qa": 200, "qg": 200])
    #expect(harness.replicas == ["acme-agents": 8, "globex-agents": 4])
    let said = harness.events.filter { $0.process == "globex-agents" }.map(\.detail)
    #expect(
      said.contains {
        $0.contains(
          "budget 'org' caps GPUs at 12, divided by weight: globex 4 (weight 1 of 3); this process's share is 4 GPUs of the 20 it asks for"
        )
      }, "\(said)")
    // One tenant alone bursts: it takes the room its idle sibling leaves.
    var alone = EngineHarness(policy, replicas: ["acme-agents": 1, "globex-agents": 1])
    alone.tick(at: 0, ["qa": 0, "qg": 200])
    #expect(alone.replicas == ["acme-agents": 1, "globex-agents": 11])
    // What runs is never taken back: acme asks again and gets what globex does not hold.
    alone.tick(at: 15, ["qa": 200, "qg": 200])
    #expect(alone.replicas == ["acme-agents": 1, "globex-agents": 11])
    // globex's load ends; its scale-down window holds its 11 for five minutes, then acme grows.
    for second in stride(from: 30, through: 300, by: 15) {
      alone.tick(at: Double(second), ["qa": 200, "qg": 0])
    }
    #expect(alone.replicas == ["acme-agents": 1, "globex-agents": 11])
    for second in stride(from: 315, through: 345, by: 15) {
      alone.tick(at: Double(second), ["qa": 200, "qg": 0])
    }
    #expect(alone.replicas == ["acme-agents": 11, "globex-agents": 1])
  }

  @Test("a tenant capped lower of its own leaves the rest of its parent's room to its sibling")
  func childCapLeavesRoom() throws {
    let policy = try Self.policy(
      org: "{daily_budget_usd: 10000, max_gpus: 12}",
      acme: "{parent: org, daily_budget_usd: 100, weight: 2, max_gpus: 3}",
      globex: "{parent: org, daily_budget_usd: 100, weight: 1}", gpus: 1)
    var harness = EngineHarness(policy, replicas: ["acme-agents": 1, "globex-agents": 1])
    harness.tick(at: 0, ["qa": 200, "qg": 200])
    #expect(harness.replicas == ["acme-agents": 3, "globex-agents": 9])
  }

  @Test(
    "a tenant's max_replicas caps the sum of its processes, and no other tenant's replicas count against it")
  func tenantCap() throws {
    var harness = EngineHarness(
      try Self.policy(acme: "{parent: org, daily_budget_usd: 100, max_replicas: 6}"),
      replicas: ["acme-agents": 1, "globex-agents": 1])
    harness.tick(at: 0, ["qa": 200, "qg": 200])
    #expect(harness.replicas == ["acme-agents": 6, "globex-agents": 20])
  }

  @Test("a process's own cost_circuit_breaker inside a tree freezes it alone")
  func ownBreakerInTree() throws {
    var harness = EngineHarness(
      try Self.policy(
        acmeCost: 60,
        extra: """
          autoscaling:
            acme-agents:
              cost_circuit_breaker: {daily_budget_usd: 1}
          """),
      replicas: ["acme-agents": 1, "globex-agents": 1])
    Self.ticks(&harness, minutes: 0...2, ["qa": 5, "qg": 5])
    #expect(harness.state.budgets["acme-agents"]?.state == .frozen)
    #expect(harness.state.budgetTree.values.allSatisfy { !$0.frozen })
    Self.ticks(&harness, minutes: 3...3, ["qa": 50, "qg": 50])
    #expect(harness.replicas == ["acme-agents": 1, "globex-agents": 5])
  }

  @Test("a cost signal missing during a freeze: the freeze holds and spend goes on at its last value")
  func missingCostSignal() throws {
    var harness = EngineHarness(
      try Self.policy(acme: "{parent: org, daily_budget_usd: 1, cost_rate_metric: llm_spend}"),
      replicas: ["acme-agents": 1, "globex-agents": 1])
    Self.ticks(&harness, minutes: 0...1, ["qa": 5, "qg": 5, "llm_spend": 120])
    #expect(harness.state.budgetTree["acme"]?.frozen == true)
    let before = try #require(harness.state.budgetTree["acme"]?.day?.spentUSD)
    Self.ticks(&harness, minutes: 2...3, ["qa": 50, "qg": 5])
    #expect(harness.state.budgetTree["acme"]?.frozen == true)
    let after = try #require(harness.state.budgetTree["acme"]?.day?.spentUSD)
    // Two minutes of the metric's last $120 an hour and of one replica at $1.
    #expect(abs(after - before - (120.0 + 1) * 2 / 60) < 1e-9)
    #expect(harness.replicas["acme-agents"] == 1)
    #expect(abs((harness.state.budgetTree["acme"]?.day?.byProcess["llm_spend"] ?? 0) - 6) < 1e-9)
  }

  @Test(
    "bad trees are refused at their line",
    arguments: [
      (
        "budgets:\n  a: {parent: b, daily_budget_usd: 1}\n  b: {parent: a, daily_budget_usd: 1}\nprocesses:\n  w: {budget: a, cost_per_hour_usd: 1, scaling: {metric: q, target: 1, max: 2}}\n",
        "p.yaml:2:15: error: budgets form a cycle: a -> b -> a"
      ),
      (
        "budgets:\n  a: {parent: org, daily_budget_usd: 1}\nprocesses:\n  w: {cost_per_hour_usd: 1, scaling: {metric: q, target: 1, max: 2}}\n",
        "p.yaml:2:15: error: parent 'org' is not a budget under budgets"
      ),
      (
        "budgets:\n  acme: {daily_budget_usd: 1}\nprocesses:\n  w: {budget: acne, cost_per_hour_usd: 1, scaling: {metric: q, target: 1, max: 2}}\n",
        "p.yaml:4:15: error: process 'w' names budget 'acne', which is not under budgets; did you mean 'acme'?"
      ),
      (
        "budgets:\n  a: {daily_budget_usd: 1}\n  b: {daily_budget_usd: 1}\nprocesses:\n  w: {budget: [a, b], cost_per_hour_usd: 1, scaling: {metric: q, target: 1, max: 2}}\n",
        "p.yaml:5:15: error: processes.w.budget names several budgets: a process is in one budget"
      ),
      (
        "budgets:\n  a: {daily_budget_usd: 1, max_gpu: 2}\nprocesses:\n  w: {budget: a, cost_per_hour_usd: 1, scaling: {metric: q, target: 1, max: 2}}\n",
        "max_gpu"
      ),
    ])
  func refused(yaml: String, message: String) {
    let said = refusal(yaml)
    #expect(said.contains(message), "\(said)")
  }

  @Test("a tenant's day larger than its organisation's is a warning that says which binds")
  func childLargerThanParent() throws {
    let loaded = try PolicyLoader.load(
      yaml: """
        budgets:
          org: {daily_budget_usd: 100}
          acme: {parent: org, daily_budget_usd: 500}
        processes:
          w: {budget: acme, cost_per_hour_usd: 1, scaling: {metric: q, target: 1, max: 2}}
        """, file: "p.yaml")
    #expect(
      loaded.warnings.map(\.description) == [
        "p.yaml:3:3: warning: budget 'acme' has a day of $500.00, more than its parent 'org' has ($100.00): the parent's freeze binds first"
      ])
    #expect(
      loaded.policy.budgets.chain(from: "acme").map { loaded.policy.budgets.budgets[$0].name } == [
        "acme", "org",
      ])
  }
}
