import CapstanCore
import Foundation

public struct ProcessSummary: Sendable, Equatable, Encodable {
  public var process: String
  public var scaleUps = 0
  public var scaleDowns = 0
  /// Blocked records by reason code.
  public var blocked: [String: Int] = [:]
  public var minReplicas = Int.max
  public var maxReplicas = 0
  public var meanReplicas = 0.0
  public var replicaHours = 0.0
  /// Replica-hours of the recording, where it has a `<process>.replicas` column.
  public var recordedReplicaHours: Double?
  /// Replica-hours × cost_per_hour_usd; nil without a cost.
  public var computeCostUSD: Double?
  /// The integral of the budget's cost-rate metric, where there is one.
  public var meteredCostUSD: Double?
  /// The breaker's daily budget, where the process has one.
  public var dailyBudgetUSD: Double?
  public var budgetAlerts = 0
  public var budgetFreezes = 0
  public var frozenSeconds = 0.0
  public var signalOutages = 0

  enum CodingKeys: String, CodingKey {
    case process
    case scaleUps = "scale_ups"
    case scaleDowns = "scale_downs"
    case blocked
    case minReplicas = "min_replicas"
    case maxReplicas = "max_replicas"
    case meanReplicas = "mean_replicas"
    case replicaHours = "replica_hours"
    case recordedReplicaHours = "recorded_replica_hours"
    case computeCostUSD = "compute_cost_usd"
    case meteredCostUSD = "metered_cost_usd"
    case dailyBudgetUSD = "daily_budget_usd"
    case budgetAlerts = "budget_alerts"
    case budgetFreezes = "budget_freezes"
    case frozenSeconds = "frozen_seconds"
    case signalOutages = "signal_outages"
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(process, forKey: .process)
    try container.encode(scaleUps, forKey: .scaleUps)
    try container.encode(scaleDowns, forKey: .scaleDowns)
    try container.encode(blocked, forKey: .blocked)
    try container.encode(minReplicas, forKey: .minReplicas)
    try container.encode(maxReplicas, forKey: .maxReplicas)
    try container.encode(rounded(meanReplicas), forKey: .meanReplicas)
    try container.encode(rounded(replicaHours), forKey: .replicaHours)
    try container.encodeIfPresent(recordedReplicaHours.map(rounded), forKey: .recordedReplicaHours)
    try container.encodeIfPresent(computeCostUSD.map(rounded), forKey: .computeCostUSD)
    try container.encodeIfPresent(meteredCostUSD.map(rounded), forKey: .meteredCostUSD)
    try container.encodeIfPresent(dailyBudgetUSD, forKey: .dailyBudgetUSD)
    try container.encode(budgetAlerts, forKey: .budgetAlerts)
    try container.encode(budgetFreezes, forKey: .budgetFreezes)
    try container.encode(frozenSeconds, forKey: .frozenSeconds)
    try container.encode(signalOutages, forKey: .signalOutages)
  }

  private func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }
}

public struct ReplayResult: Sendable, Equatable, Encodable {
  public var start: Date
  public var end: Date
  public var ticks: Int
  public var intervalSeconds: Double
  public var processes: [ProcessSummary]
  /// Every event in order, for the text timeline (empty where the driver wrote them as they
  /// came).
  public var events: [AuditEvent]
  /// The longest stretch between two samples in a row, and the sample it follows.
  public var longestGap: Gap?
  /// Each `budgets:` budget's days, each as it ended, then the day each was in at the end.
  public var budgetDays: [BudgetDayReport] = []

  public struct Gap: Sendable, Equatable {
    public var seconds: TimeInterval
    public var after: Date
  }

  enum CodingKeys: String, CodingKey {
    case start, end, ticks
    case intervalSeconds = "interval_seconds"
    case processes
    case budgetDays = "budget_days"
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(RFC3339.string(from: start), forKey: .start)
    try container.encode(RFC3339.string(from: end), forKey: .end)
    try container.encode(ticks, forKey: .ticks)
    try container.encode(intervalSeconds, forKey: .intervalSeconds)
    try container.encode(processes, forKey: .processes)
    if !budgetDays.isEmpty { try container.encode(budgetDays, forKey: .budgetDays) }
  }
}

struct SummaryAccumulator {
  let policy: Policy
  let start: Date
  /// Per target, in policy order: what `hold` adds to every tick, by index rather than by name.
  var summaries: [ProcessSummary]
  var weightedReplicas: [Double]
  var heldSeconds = 0.0
  var events: [AuditEvent] = []
  /// Whether the result lists every event; a driver that writes them as they come need not.
  let keepEvents: Bool
  /// Per target, where its budget's cost-rate metric sits in the tick's signals.
  let costRatePositions: [Int?]
  /// Per target: whether it has a budget, and whether the budget meters a cost rate, read once
  /// so that a tick copies no optional settings.
  let hasBudget: [Bool]
  let metersCostRate: [Bool]

  init(engine: ScalingEngine, start: Date, keepEvents: Bool = true) {
    let policy = engine.policy
    self.policy = policy
    self.start = start
    self.keepEvents = keepEvents
    costRatePositions = policy.targets.map { target in
      target.budget?.costRateMetric.flatMap { engine.position(ofSignal: $0) }
    }
    hasBudget = policy.targets.map { $0.budget != nil }
    metersCostRate = policy.targets.map { $0.budget?.costRateMetric != nil }
    summaries = policy.targets.map { target in
      var summary = ProcessSummary(process: target.name)
      summary.dailyBudgetUSD = target.budget?.dailyBudgetUSD
      return summary
    }
    weightedReplicas = Array(repeating: 0, count: policy.targets.count)
  }

  mutating func record(_ event: AuditEvent) {
    if keepEvents { events.append(event) }
    guard let index = policy.targets.firstIndex(where: { $0.name == event.process }) else { return }
    switch event.kind {
    case .scaleUp: summaries[index].scaleUps += 1
    case .scaleDown: summaries[index].scaleDowns += 1
    case .blocked: summaries[index].blocked[event.reason.rawValue, default: 0] += 1
    case .budgetAlert: summaries[index].budgetAlerts += 1
    case .budgetFreeze: summaries[index].budgetFreezes += 1
    case .signalMissing: summaries[index].signalOutages += 1
    case .signalRestored, .budgetReset, .policyReloaded, .policyRejected, .externalChange, .warning,
      .predictiveFloor,
      .leaderElected, .leaderLost:
      break
    }
  }

  /// The replicas after a tick's actions are what ran until the next tick.
  /// - Parameters: by position: `replicas` and `recorded` per target in the policy's order,
  ///   `signals` in the engine's signal order.
  mutating func hold(
    _ replicas: [Int], recorded: [Double?], for seconds: TimeInterval, state: EngineState,
    engine: ScalingEngine,
    signals: [Double?]
  ) {
    heldSeconds += seconds
    // By index: a `for target in policy.targets` copies every target, every tick.
    for index in policy.targets.indices {
      let count = replicas[index]
      summaries[index].minReplicas = min(summaries[index].minReplicas, count)
      summaries[index].maxReplicas = max(summaries[index].maxReplicas, count)
      weightedReplicas[index] += Double(count) * seconds
      summaries[index].replicaHours += Double(count) * seconds / 3600
      if let value = recorded[index] {
        summaries[index].recordedReplicaHours =
          (summaries[index].recordedReplicaHours ?? 0) + value * seconds / 3600
      }
      if let cost = policy.targets[index].costPerHourUSD {
        summaries[index].computeCostUSD =
          (summaries[index].computeCostUSD ?? 0) + cost * Double(count) * seconds / 3600
      }
      if hasBudget[index] {
        let ledger = engine.budget(ofTarget: index, in: state)
        if metersCostRate[index] {
          // A missing sample carries the last value forward, as the budget does.
          let rate = costRatePositions[index].flatMap { signals[$0] } ?? ledger?.lastCostRate ?? 0
          summaries[index].meteredCostUSD = (summaries[index].meteredCostUSD ?? 0) + rate * seconds / 3600
        }
        if ledger?.state == .frozen {
          summaries[index].frozenSeconds += seconds
        }
      }
    }
  }

  func result(end: Date, ticks: Int, interval: TimeInterval) -> ReplayResult {
    let processes = summaries.enumerated().map { index, summary -> ProcessSummary in
      var summary = summary
      if summary.minReplicas == .max { summary.minReplicas = 0 }
      summary.meanReplicas =
        heldSeconds > 0 ? weightedReplicas[index] / heldSeconds : Double(summary.maxReplicas)
      return summary
    }
    return ReplayResult(
      start: start, end: end, ticks: ticks, intervalSeconds: interval, processes: processes, events: events,
      longestGap: nil)
  }
}

/// The human-readable report: a timeline of changes and blocks, then a summary per process.
public enum ReplayReport {
  /// What was replayed, over what span.
  public static func header(_ result: ReplayResult, policyPath: String, metricsPath: String) -> String {
    "Replay of \(policyPath) against \(metricsPath)\n"
      + "\(RFC3339.string(from: result.start)) to \(RFC3339.string(from: result.end)), \(result.ticks) ticks every \(format(result.intervalSeconds))s\n\n"
  }

  /// Per process: moves, blocks, replicas, hours, cost and budget.
  public static func summary(_ result: ReplayResult) -> String {
    var out = "\nSummary\n"
    for summary in result.processes {
      out += "  \(summary.process)\n"
      out += "    scale-ups \(summary.scaleUps), scale-downs \(summary.scaleDowns)\n"
      let blocked = summary.blocked.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
      out += "    blocked: \(blocked.isEmpty ? "none" : blocked.joined(separator: ", "))\n"
      out +=
        "    replicas: min \(summary.minReplicas), mean \(String(format: "%.2f", summary.meanReplicas)), max \(summary.maxReplicas)\n"
      var hours = "    replica-hours: \(String(format: "%.2f", summary.replicaHours))"
      if let recorded = summary.recordedReplicaHours {
        hours += " (the recording ran \(String(format: "%.2f", recorded)))"
      }
      out += hours + "\n"
      if let cost = summary.computeCostUSD { out += "    compute cost: \(String(format: "$%.2f", cost))\n" }
      if let metered = summary.meteredCostUSD {
        out += "    metered cost: \(String(format: "$%.2f", metered))\n"
      }
      if let budget = summary.dailyBudgetUSD {
        out +=
          "    budget \(String(format: "$%.2f", budget))/day: \(summary.budgetAlerts) alerts, \(summary.budgetFreezes) freezes, frozen \(duration(summary.frozenSeconds))\n"
      }
      if summary.signalOutages > 0 { out += "    signal outages: \(summary.signalOutages)\n" }
    }
    if !result.budgetDays.isEmpty {
      out += "\nBudgets\n"
      let width = result.budgetDays.map(\.budget.count).max() ?? 0
      for row in budgetRows(result) {
        out +=
          "  " + row[0].padding(toLength: width, withPad: " ", startingAt: 0) + "  "
          + row[1...].joined(separator: "  ") + "\n"
      }
    }
    return out
  }

  /// A budget's day: its name, date, spend against its limit, state, and freeze.
  static func budgetRows(_ result: ReplayResult) -> [[String]] {
    result.budgetDays.map { day in
      [
        day.budget, day.date,
        String(format: "$%.2f", day.spentUSD) + (day.limitUSD.map { String(format: " of $%.2f", $0) } ?? ""),
        day.health.rawValue + (day.frozen ? ", frozen" : ""),
      ]
    }
  }

  /// The budgets' days as a table, for the HTML report.
  public static func budgetTable(_ result: ReplayResult) -> HTMLReport.Table? {
    guard !result.budgetDays.isEmpty else { return nil }
    return HTMLReport.Table(
      caption: "Budgets", header: ["budget", "day", "spent", "state"], rows: budgetRows(result))
  }

  /// The summary as a table, a row per process, for the HTML report.
  public static func summaryTable(_ result: ReplayResult) -> HTMLReport.Table {
    let rows = result.processes.map { summary -> [String] in
      let blocked = summary.blocked.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
      return [
        summary.process, "\(summary.scaleUps)", "\(summary.scaleDowns)",
        blocked.isEmpty ? "none" : blocked.joined(separator: ", "),
        "\(summary.minReplicas) / \(String(format: "%.2f", summary.meanReplicas)) / \(summary.maxReplicas)",
        String(format: "%.2f", summary.replicaHours),
        summary.recordedReplicaHours.map { String(format: "%.2f", $0) } ?? "-",
        summary.computeCostUSD.map { String(format: "$%.2f", $0) } ?? "-",
        summary.dailyBudgetUSD.map {
          "\(String(format: "$%.2f", $0))/day: \(summary.budgetAlerts) alerts, \(summary.budgetFreezes) freezes, frozen \(duration(summary.frozenSeconds))"
        } ?? "-",
        "\(summary.signalOutages)",
      ]
    }
    return HTMLReport.Table(
      caption: "Summary",
      header: [
        "process", "scale-ups", "scale-downs", "blocked", "replicas min / mean / max", "replica-hours",
        "recorded replica-hours", "compute cost", "budget", "signal outages",
      ], rows: rows)
  }

  // The timeline: every change and block, one line each, printed as it happens (replay spools
  // it, simulate prints it): a `Timeline` heading, `timelineLine` per event, or `timelineEmpty`.

  /// The process column's width in a timeline of these processes.
  public static func timelineWidth(_ processes: [String]) -> Int { max(7, processes.map(\.count).max() ?? 0) }

  /// What a timeline says when nothing happened.
  public static let timelineEmpty = "  (no changes, blocks, outages or budget events)\n"

  /// One event's line of the timeline, so a long run can print it as it happens.
  public static func timelineLine(_ event: AuditEvent, width: Int) -> String {
    var counts = ""
    if let from = event.from, let to = event.to {
      switch event.kind {
      case .scaleUp, .scaleDown: counts = "\(from) -> \(to)"
      case .blocked: counts = "\(from) (wanted \(to))"
      default: counts = "at \(from)"
      }
    }
    return
      "  \(RFC3339.string(from: event.time))  \(pad(event.process, width))  \(pad(event.kind.rawValue, 15))  \(pad(counts, 14))  \(pad(event.reason.rawValue, 18))  \(event.detail)\n"
  }

  public static func json(_ result: ReplayResult) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let data = (try? encoder.encode(result)) ?? Data(#"{"error":"unencodable summary"}"#.utf8)
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  private static func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
  }

  static func format(_ value: Double) -> String { Ceilings.format(value) }

  static func duration(_ seconds: Double) -> String {
    let minutes = Int(seconds / 60)
    return minutes >= 60 ? "\(minutes / 60)h \(minutes % 60)m" : "\(minutes)m"
  }
}
