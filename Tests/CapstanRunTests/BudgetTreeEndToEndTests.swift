import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Two tenants of one organisation, each with a local worker pool fed from its own spool.
struct TenantsScenario {
  let folder: URL
  var policy: URL { folder.appendingPathComponent("policy.yaml") }
  var state: URL { folder.appendingPathComponent("state") }

  init(acme: String, globex: String, acmeCost: Double = 0.1) throws {
    folder = try scratchDirectory("tenants")
    for tenant in ["acme", "globex"] {
      try FileManager.default.createDirectory(
        at: folder.appendingPathComponent("spool-\(tenant)"), withIntermediateDirectories: true)
    }
    try writeScript(folder.appendingPathComponent("worker.sh"), "while true; do sleep 0.1; done")
    let yaml = """
      controller: {interval: 1s}
      signals:
        acme_queue: {directory: {path: spool-acme, glob: "*.job"}}
        globex_queue: {directory: {path: spool-globex, glob: "*.job"}}
      budgets:
        org: {daily_budget_usd: 100000}
        acme: \(acme)
        globex: \(globex)
      processes:
        acme-workers:
          class: batch
          budget: acme
          cost_per_hour_usd: \(acmeCost)
          scaling: {metric: acme_queue, target: 5, min: 1, max: 4}
          local: {command: [./worker.sh]}
        globex-workers:
          class: batch
          budget: globex
          cost_per_hour_usd: 0.1
          scaling: {metric: globex_queue, target: 5, min: 1, max: 4}
          local: {command: [./worker.sh]}
      autoscaling:
        acme-workers: {scale_up: {stabilization_window: 0s}}
        globex-workers: {scale_up: {stabilization_window: 0s}}
      """
    try Data(yaml.utf8).write(to: policy)
  }

  func queue(_ tenant: String, _ count: Int) throws {
    let spool = folder.appendingPathComponent("spool-\(tenant)")
    for index in 0..<count { try Data().write(to: spool.appendingPathComponent("\(index).job")) }
  }

  func start() throws -> RunningCapstan {
    try RunningCapstan(policy: policy, stateDirectory: state, extraArguments: [])
  }

  func current(_ capstan: RunningCapstan, _ process: String) async -> Double? {
    await capstan.metric(#"capstan_replicas{process="\#(process)",state="current"}"#)
  }
}

@Suite("Budgets that nest, under capstan run", .serialized)
struct BudgetTreeEndToEndTests {
  @Test("one tenant's spend freezes its own scale-ups and never the other's")
  func spendIsolation() async throws {
    // acme's one replica spends its cent of a day within a second ($3600 an hour).
    let scenario = try TenantsScenario(
      acme: "{parent: org, daily_budget_usd: 0.01}", globex: "{parent: org, daily_budget_usd: 1000}",
      acmeCost: 3600)
    let capstan = try scenario.start()
    #expect(
      await eventually(timeout: 30) {
        await capstan.metric(#"capstan_named_budget_frozen{budget="acme"}"#) == 1
      })
    try scenario.queue("acme", 20)
    try scenario.queue("globex", 20)
    #expect(await eventually(timeout: 30) { await scenario.current(capstan, "globex-workers") == 4 })
    #expect(
      await eventually(timeout: 30) {
        capstan.records(event: "blocked").contains {
          $0["process"] as? String == "acme-workers" && $0["reason"] as? String == "budget_frozen"
            && ($0["detail"] as? String)?.contains("budget 'acme' is frozen") == true
        }
      })
    #expect(await scenario.current(capstan, "acme-workers") == 1)
    #expect(await capstan.metric(#"capstan_named_budget_frozen{budget="globex"}"#) == 0)
    #expect(await capstan.metric(#"capstan_named_budget_state{budget="acme",state="exceeded"}"#) == 1)
    let freeze = try #require(capstan.records(event: "budget_freeze").first)
    #expect(freeze["process"] as? String == "*")
    #expect((freeze["named_budget"] as? [String: Any])?["name"] as? String == "acme")

    // The day's file: the tenant's spend by process, and its freeze.
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyy-MM-dd"
    let file = scenario.state.appendingPathComponent("budgets/acme/\(formatter.string(from: Date())).json")
    #expect(await eventually { FileManager.default.fileExists(atPath: file.path) })
    let day = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
    #expect(day["budget"] as? String == "acme" && day["parent"] as? String == "org")
    #expect(day["frozen"] as? Bool == true)
    #expect((day["by_process"] as? [String: Double])?.keys.sorted() == ["acme-workers"])

    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("one tenant's replicas never count against the other's cap")
  func capIsolation() async throws {
    let scenario = try TenantsScenario(
      acme: "{parent: org, daily_budget_usd: 1000, max_replicas: 2}",
      globex: "{parent: org, daily_budget_usd: 1000, max_replicas: 3}")
    let capstan = try scenario.start()
    #expect(await eventually { await capstan.get("/healthz")?.status == 200 })
    try scenario.queue("acme", 20)
    #expect(await eventually(timeout: 30) { await scenario.current(capstan, "acme-workers") == 2 })
    try scenario.queue("globex", 20)
    #expect(await eventually(timeout: 30) { await scenario.current(capstan, "globex-workers") == 3 })
    // Five run in all, over each tenant's cap but within each one's own.
    #expect(await scenario.current(capstan, "acme-workers") == 2)
    #expect(
      capstan.records(event: "blocked").contains {
        $0["process"] as? String == "acme-workers" && $0["reason"] as? String == "budget_cap"
      })
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }
}
