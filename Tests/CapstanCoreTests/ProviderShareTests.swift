import Foundation
import Testing

@testable import CapstanCore

@Suite("A provider shared by tenants, divided by rate_limit_weight")
struct ProviderShareTests {
  /// Two tenants' worker pools on one provider: 100,000 tokens a minute × 0.8, 10,000 a replica.
  static func policy(acme: String = "rate_limit_weight: 2", globex: String = "", extra: String = "") throws
    -> Policy
  {
    try loadPolicy(
      """
      budgets:
        org: {daily_budget_usd: 10000}
        acme: {parent: org, daily_budget_usd: 100, \(acme)}
        globex: {parent: org, daily_budget_usd: 100, \(globex)}
      providers:
        llm: {tokens_per_minute: 100000, safety_margin: 0.8}
      processes:
        acme-agents:
          budget: acme
          cost_per_hour_usd: 1
          rate_limit: {provider: llm, tokens_per_minute_per_replica: 10000}
          scaling: {metric: qa, target: 10, min: 1, max: 40}
        globex-agents:
          budget: globex
          cost_per_hour_usd: 1
          rate_limit: {provider: llm, tokens_per_minute_per_replica: 10000}
          scaling: {metric: qg, target: 10, min: 1, max: 40}
      \(extra)
      """)
  }

  @Test("both tenants burst: the provider's room goes 2 to 1 by weight, never first come first served")
  func dividedByWeight() throws {
    // 80,000 tokens a minute hold 8 replicas. First come first served, acme (first in the
    // file) would take 7 and leave globex its 1; by weight, the 6 above the two that run go
    // a replica at a time to the tenant with the least per weight, ties to the first.
    var harness = EngineHarness(try Self.policy(), replicas: ["acme-agents": 1, "globex-agents": 1])
    harness.tick(at: 0, ["qa": 200, "qg": 200])
    #expect(harness.replicas == ["acme-agents": 6, "globex-agents": 2])
    let blocked = try #require(harness.events(.blocked).last { $0.process == "globex-agents" })
    #expect(blocked.reason == .rateLimitCeiling)
    #expect(
      blocked.detail.contains(
        "provider 'llm' tokens_per_minute 100000 × safety margin 0.8, divided by rate_limit_weight: globex 20000 (weight 1 of 3); this process's share, 20000 at 10000 per replica, allows 2 replicas of the 7 it asks for"
      ), "\(blocked.detail)")
    // Without a weight, each tenant's is 1: an even split.
    var even = EngineHarness(try Self.policy(acme: ""), replicas: ["acme-agents": 1, "globex-agents": 1])
    even.tick(at: 0, ["qa": 200, "qg": 200])
    #expect(even.replicas == ["acme-agents": 4, "globex-agents": 4])
  }

  @Test("a tenant that asks for little leaves the rest of the provider to the other")
  func idleTenantLeavesRoom() throws {
    var harness = EngineHarness(try Self.policy(), replicas: ["acme-agents": 1, "globex-agents": 1])
    harness.tick(at: 0, ["qa": 5, "qg": 200])
    #expect(harness.replicas == ["acme-agents": 1, "globex-agents": 7])
    // What runs is never taken back: acme's burst gets only what globex does not hold.
    harness.tick(at: 15, ["qa": 200, "qg": 200])
    #expect(harness.replicas == ["acme-agents": 1, "globex-agents": 7])
  }

  @Test(
    "a process in no budget on the provider weighs 1 beside the top budget; processes of one budget share first come first served"
  )
  func unbudgetedProcess() throws {
    let extra = """
        shared-api:
          cost_per_hour_usd: 1
          rate_limit: {provider: llm, tokens_per_minute_per_replica: 10000}
          scaling: {metric: qs, target: 10, min: 1, max: 40}
      """
    var harness = EngineHarness(
      try Self.policy(extra: extra), replicas: ["acme-agents": 1, "globex-agents": 1, "shared-api": 1])
    harness.tick(at: 0, ["qa": 200, "qg": 200, "qs": 200])
    // org and shared-api, 1 to 1: 4 each; org's 4 go 2 to 1 between its tenants, 3 and 1.
    #expect(harness.replicas == ["acme-agents": 3, "globex-agents": 1, "shared-api": 4])

    // Two processes of the same budget alone on a provider: nothing to divide between budgets.
    let one = try loadPolicy(
      """
      budgets:
        acme: {daily_budget_usd: 100, rate_limit_weight: 2}
      providers:
        llm: {tokens_per_minute: 100000, safety_margin: 0.8}
      processes:
        a:
          budget: acme
          rate_limit: {provider: llm, tokens_per_minute_per_replica: 10000}
          scaling: {metric: qa, target: 10, min: 1, max: 40}
        b:
          budget: acme
          rate_limit: {provider: llm, tokens_per_minute_per_replica: 10000}
          scaling: {metric: qb, target: 10, min: 1, max: 40}
      """)
    var alone = EngineHarness(one, replicas: ["a": 1, "b": 1])
    alone.tick(at: 0, ["qa": 200, "qb": 200])
    #expect(alone.replicas == ["a": 7, "b": 1])
  }

  @Test("rate_limit_weight must be above zero, and says where")
  func refused() {
    let said = refusal(
      "budgets:\n  a: {daily_budget_usd: 1, rate_limit_weight: 0}\nprocesses:\n  w: {budget: a, cost_per_hour_usd: 1, scaling: {metric: q, target: 1, max: 2}}\n"
    )
    #expect(said.contains("p.yaml:2:47: error: '0' must be above zero"), "\(said)")
  }
}
