import CapstanTestKit
import Foundation
import Testing

/// `examples/tenants`: a day of two tenants under one organisation, replayed by the real binary.
@Suite("Budgets that nest, replayed", .serialized)
struct BudgetReplayTests {
  static let arguments = ["replay", "examples/tenants/policy.yaml", "--metrics", "examples/tenants/day.csv"]
  static let golden = goldenFolder.appendingPathComponent("tenants")
  static let days = [
    "org/2023-11-15.json", "org/2023-11-16.json", "acme/2023-11-15.json", "acme/2023-11-16.json",
    "globex/2023-11-15.json", "globex/2023-11-16.json",
  ]

  @Test("a recorded day of two tenants: the audit log and every budget's days' files, byte for byte")
  func goldenDays() throws {
    let folder = try scratchDirectory("tenants")
    let result = try runCapstan(
      Self.arguments + [
        "--budget-days", folder.appendingPathComponent("budgets").path,
        "--audit-log", folder.appendingPathComponent("audit.jsonl").path,
      ])
    #expect(result.status == 0, "\(result.stderr)")
    for name in Self.days + ["audit.jsonl"] {
      let produced = folder.appendingPathComponent(name == "audit.jsonl" ? name : "budgets/\(name)")
      #expect(
        FileManager.default.contents(atPath: produced.path)
          == FileManager.default.contents(atPath: Self.golden.appendingPathComponent(name).path),
        "\(name) differs from the reviewed one")
    }
    try? FileManager.default.removeItem(at: folder)
  }

  @Test(
    "the reviewed days say what the policy sets: the day turns in Los Angeles, acme freezes, the GPUs are divided"
  )
  func goldenSaysSo() throws {
    func day(_ name: String) throws -> [String: Any] {
      try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: Self.golden.appendingPathComponent(name)))
          as? [String: Any])
    }
    // The recording's UTC day holds the end of the 15th and the start of the 16th in Los Angeles.
    let ended = try day("org/2023-11-15.json")
    #expect(
      ended["start"] as? String == "2023-11-15T08:00:00Z" && ended["end"] as? String == "2023-11-16T08:00:00Z"
    )
    #expect((ended["by_hour"] as? [Any])?.count == 24)
    // The organisation's spend is its tenants' together, process by process.
    for date in ["2023-11-15", "2023-11-16"] {
      let org = try day("org/\(date).json")["spent_usd"] as? Double ?? -1
      let tenants =
        (try day("acme/\(date).json")["spent_usd"] as? Double ?? 0)
        + (try day("globex/\(date).json")["spent_usd"] as? Double ?? 0)
      #expect(abs(org - tenants) < 0.001)
    }
    #expect(try day("acme/2023-11-16.json")["frozen"] as? Bool == true)
    #expect(try day("globex/2023-11-16.json")["frozen"] as? Bool == false)
    let records = try String(contentsOf: Self.golden.appendingPathComponent("audit.jsonl"), encoding: .utf8)
    #expect(records.contains(#""reason":"budget_cap""#))
    #expect(records.contains("budget 'org' caps GPUs at 12, divided by weight"))
    #expect(records.contains("budget 'acme' is frozen"))
  }

  @Test("--budget-days where no folder can be made stops the replay with an error that names it")
  func unwritableDays() throws {
    let folder = try scratchDirectory("tenants-unwritable")
    let blocker = folder.appendingPathComponent("not-a-folder")
    try Data("x".utf8).write(to: blocker)
    let result = try runCapstan(Self.arguments + ["--budget-days", blocker.path])
    #expect(result.status == 1)
    #expect(
      result.stderr.contains("capstan replay: error: cannot write a budget's day under \(blocker.path)"))
    try? FileManager.default.removeItem(at: folder)
  }

  @Test("the summary ends with each budget's days: spend against the limit, state, and freeze")
  func summaryDays() throws {
    let result = try runCapstan(Self.arguments)
    #expect(result.status == 0, "\(result.stderr)")
    let budgets = try #require(result.stdout.components(separatedBy: "\nBudgets\n").last)
    let lines = budgets.split(separator: "\n").map(String.init)
    #expect(lines.count == 6)
    #expect(lines.first == "  org     2023-11-15  $176.39 of $400.00  healthy")
    #expect(lines.contains { $0.hasPrefix("  acme    2023-11-16") && $0.hasSuffix("exceeded, frozen") })
    let json = try runCapstan(Self.arguments + ["--format", "json"])
    let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
    #expect((object?["budget_days"] as? [Any])?.count == 6)
  }

  @Test("simulate drives the same engine: a team's spent day freezes the simulated fleet's scale-ups")
  func simulated() throws {
    let folder = try scratchDirectory("tenants-simulate")
    let example = try String(contentsOfFile: "examples/simulate/jobs.yaml", encoding: .utf8)
    let policy = example.replacingOccurrences(
      of: "processes:\n  worker:\n",
      with: "budgets:\n  team: {daily_budget_usd: 0.05}\n\nprocesses:\n  worker:\n    budget: team\n")
    #expect(policy != example)
    let file = folder.appendingPathComponent("jobs.yaml")
    try Data(policy.utf8).write(to: file)
    let result = try runCapstan(["simulate", file.path, "--trace", "examples/simulate/jobs-burst.csv"])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(
      result.stdout.contains("budget 'team' spent $0.05 of the daily $0.05, past the action threshold 95%"))
    #expect(result.stdout.contains("budget_frozen       wanted 17"))
    try? FileManager.default.removeItem(at: folder)
  }

  @Test("validate shows the tree and what binds each process")
  func validateTree() throws {
    let result = try runCapstan(["validate", "examples/tenants/policy.yaml"])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(
      result.stdout.contains(
        "in budget acme, under org: freezes with acme's or org's day; shares org's 12 GPUs"))
    #expect(
      result.stdout.contains("budgets:\n  org: $400/day (America/Los_Angeles), freezes at 95%; max 12 GPUs\n")
    )
    #expect(
      result.stdout.contains(
        "    globex: $250/day (America/Los_Angeles), freezes at 95%; max 10 replicas; weight 1; processes globex-workers"
      ))
  }

  @Test(
    "tenants sharing a provider: validate says it is divided, and a replayed burst is split by rate_limit_weight"
  )
  func sharedProvider() throws {
    let folder = try scratchDirectory("tenants-provider")
    let policy = "examples/shared-provider/policy.yaml"
    let validated = try runCapstan(["validate", policy])
    #expect(validated.status == 0, "\(validated.stderr)")
    #expect(
      validated.stdout.contains(
        "in budget globex, under org: freezes with globex's or org's day; provider 'llm' is shared with other budgets, divided by rate_limit_weight"
      ), "\(validated.stdout)")
    #expect(
      validated.stdout.contains("acme: $100/day (GMT), freezes at 95%; weight 100; rate_limit_weight 2;"))

    let audit = folder.appendingPathComponent("audit.jsonl")
    let replayed = try runCapstan([
      "replay", policy, "--metrics", "examples/shared-provider/burst.csv", "--audit-log", audit.path,
      "--start", "acme-agents=1", "--start", "globex-agents=1",
    ])
    #expect(replayed.status == 0, "\(replayed.stderr)")
    let records = try String(contentsOf: audit, encoding: .utf8).split(separator: "\n").compactMap {
      try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    let scaled = records.filter { $0["event"] as? String == "scale_up" }
    #expect(
      scaled.map { "\($0["process"] ?? "") \($0["to"] ?? "")" } == ["acme-agents 6", "globex-agents 2"])
    #expect(
      records.contains {
        $0["process"] as? String == "globex-agents" && $0["reason"] as? String == "rate_limit_ceiling"
          && ($0["detail"] as? String)?.contains("divided by rate_limit_weight: globex 20000 (weight 1 of 3)")
            == true
      }, "\(records)")
    try? FileManager.default.removeItem(at: folder)
  }
}
