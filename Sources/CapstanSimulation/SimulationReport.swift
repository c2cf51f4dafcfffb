import CapstanCore
import Foundation

/// A simulation's scores, one table per process with a row per run (the policy, then each
/// baseline), or the same as JSON.
public enum SimulationReport {
  /// Per process: its SLO and work bound in a sentence, and a row per run, as text and the HTML
  /// report both print them.
  public static func tables(_ runs: [SimulationResult]) -> [(
    title: String, header: [String], rows: [[String]]
  )] {
    guard let first = runs.first else { return [] }
    var tables: [(title: String, header: [String], rows: [[String]])] = []
    for name in first.processes.map(\.name) {
      let rows = runs.compactMap { run in run.processes.first { $0.name == name } }
      guard let slo = rows.first?.slo else { continue }
      // Against the oracle on what its search minimises: replica-hours, or dollars for a process
      // with variants.
      let oracle = rows.first { $0.run == Baseline.oracle.rawValue }?.searchCost
      let variants = !(rows.first?.variantReplicaHours.isEmpty ?? true)
      let bound = rows.first.map { String(format: "%.2f", $0.workBoundReplicaHours) } ?? "-"
      var title =
        "\(name): SLO \(slo.latency.rawValue) <= \(number(slo.bound))s for \(number(slo.target * 100))% of requests; no schedule can use fewer than \(bound) replica-hours"
      if variants { title += " of capacity 1; x oracle is on cost" }
      var header = [
        "run", "replica-h", "x oracle", "cost", "in SLO", "avg repl", "goodput/rh", "missed min", "p50",
        "p95",
        "p99", "actions", "reversals", "peak", "failed",
      ]
      if variants { header.append("replica-h by variant") }
      let cells = rows.map { row in
        [
          row.run, String(format: "%.2f", row.replicaHours),
          oracle.map { $0 > 0 ? String(format: "%.2f", row.searchCost / $0) : "-" } ?? "-",
          String(format: "$%.2f", row.costUSD), String(format: "%.2f%%", row.sloAttainment * 100),
          String(format: "%.2f", row.averageReplicas), String(format: "%.0f", row.goodputPerReplicaHour),
          "\(row.sloMissMinutes)", seconds(row.latencyP50), seconds(row.latencyP95), seconds(row.latencyP99),
          "\(row.scaleActions)", "\(row.reversals)", "\(row.peakReplicas)",
          "\(row.failed) of \(row.requests)",
        ]
          + (variants
            ? [
              row.variantReplicaHours.map { "\($0.variant) \(String(format: "%.2f", $0.replicaHours))" }
                .joined(separator: ", ")
            ]
            : [])
      }
      tables.append((title, header, cells))
    }
    return tables
  }

  public static func text(_ runs: [SimulationResult]) -> String {
    guard let first = runs.first else { return "" }
    var out = "Simulated \(hours(first.seconds)) of traffic; \(startSentence(first.start))\n"
    for (title, header, rows) in tables(runs) {
      out += "\n\(title)\n"
      let table = [header] + rows
      let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
      for line in table {
        out +=
          "  "
          + line.enumerated().map { column, cell in
            column == 0
              ? cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
              : pad(cell, widths[column])
          }.joined(separator: "  ") + "\n"
      }
    }
    return out
  }

  /// How the runs began, said with every table: a clause, or with `capitalized` a sentence's start.
  public static func startSentence(_ start: Simulator.Start, capitalized: Bool = false) -> String {
    let first = capitalized ? "Every" : "every"
    return switch start {
    case .oracle:
      "\(first) run starts warm, with the replicas the oracle runs at its first tick (--start min: cold)"
    case .min: "\(first) run starts cold, at its min (--start oracle: warm)"
    }
  }

  public static func json(_ runs: [SimulationResult]) -> String {
    guard let first = runs.first else { return "{}\n" }
    let processes: [[String: Any]] = first.processes.map { process in
      let rows = runs.compactMap { run in run.processes.first { $0.name == process.name } }
      let oracle = rows.first { $0.run == Baseline.oracle.rawValue }
      return [
        "name": process.name,
        "slo": [
          "latency": process.slo.latency.rawValue, "bound_seconds": process.slo.bound,
          "target": process.slo.target,
        ],
        "work_bound_replica_hours": rounded(process.workBoundReplicaHours),
        "runs": rows.map { row -> [String: Any] in
          var entry: [String: Any] = [
            "run": row.run, "requests": row.requests, "failed": row.failed,
            "replica_hours": rounded(row.replicaHours), "cost_usd": rounded(row.costUSD),
            "slo_attainment": rounded(row.sloAttainment), "slo_miss_minutes": row.sloMissMinutes,
            "goodput_per_replica_hour": rounded(row.goodputPerReplicaHour),
            "average_replicas": rounded(row.averageReplicas),
            "latency_seconds": [
              "p50": rounded(row.latencyP50), "p95": rounded(row.latencyP95), "p99": rounded(row.latencyP99),
            ],
            "scale_actions": row.scaleActions, "reversals": row.reversals, "peak_replicas": row.peakReplicas,
          ]
          if let oracle = oracle?.replicaHours, oracle > 0 {
            entry["replica_hours_vs_oracle"] = rounded(row.replicaHours / oracle)
          }
          if !row.variantReplicaHours.isEmpty {
            entry["variant_replica_hours"] = Dictionary(
              row.variantReplicaHours.map { ($0.variant, rounded($0.replicaHours)) }, uniquingKeysWith: +)
            if let oracle = oracle?.costUSD, oracle > 0 {
              entry["cost_vs_oracle"] = rounded(row.costUSD / oracle)
            }
          }
          return entry
        },
      ]
    }
    let object: [String: Any] = [
      "processes": processes, "seconds": rounded(first.seconds), "start": first.start.rawValue,
    ]
    guard
      let data = try? JSONSerialization.data(
        withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    else { return "{}\n" }
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  /// Four decimals: stable output, free of floating-point tails.
  static func rounded(_ value: Double) -> Double { value.isFinite ? (value * 10_000).rounded() / 10_000 : 0 }
  static func number(_ value: Double) -> String { Ceilings.format(value) }
  static func seconds(_ value: Double) -> String { String(format: "%.2fs", value) }
  static func hours(_ value: Double) -> String { String(format: "%.2fh", value / 3600) }
  static func pad(_ text: String, _ width: Int) -> String {
    String(repeating: " ", count: max(0, width - text.count)) + text
  }
}
