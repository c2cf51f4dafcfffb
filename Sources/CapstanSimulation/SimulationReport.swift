import CapstanCore
import Foundation

/// A simulation's scores: a table per process, or JSON.
public enum SimulationReport {
  public static func text(_ result: SimulationResult) -> String {
    var out = "Simulated \(hours(result.seconds)) in \(result.ticks) ticks\n"
    for process in result.processes {
      let slo = process.slo
      out +=
        "\n\(process.name): SLO \(slo.latency.rawValue) <= \(number(slo.bound))s for \(number(slo.target * 100))% of requests\n"
      out += "  requests          \(process.requests) (\(process.failed) failed)\n"
      out += "  replica-hours     \(String(format: "%.2f", process.replicaHours))\n"
      out += "  cost              \(String(format: "$%.2f", process.costUSD))\n"
      out +=
        "  inside the SLO    \(String(format: "%.2f", process.sloAttainment * 100))% (\(process.sloMissMinutes) minutes missed it)\n"
      out +=
        "  latency           p50 \(seconds(process.latencyP50)), p95 \(seconds(process.latencyP95)), p99 \(seconds(process.latencyP99))\n"
      out +=
        "  scale actions     \(process.scaleActions) (\(process.reversals) reversals within 5 minutes), peak \(process.peakReplicas) replicas\n"
    }
    return out
  }

  public static func json(_ result: SimulationResult) -> String {
    let processes: [[String: Any]] = result.processes.map { process in
      [
        "name": process.name,
        "slo": [
          "latency": process.slo.latency.rawValue, "bound_seconds": process.slo.bound,
          "target": process.slo.target,
        ],
        "runs": [
          [
            "run": "policy", "requests": process.requests, "failed": process.failed,
            "replica_hours": rounded(process.replicaHours), "cost_usd": rounded(process.costUSD),
            "slo_attainment": rounded(process.sloAttainment), "slo_miss_minutes": process.sloMissMinutes,
            "latency_seconds": [
              "p50": rounded(process.latencyP50), "p95": rounded(process.latencyP95),
              "p99": rounded(process.latencyP99),
            ],
            "scale_actions": process.scaleActions, "reversals": process.reversals,
            "peak_replicas": process.peakReplicas,
          ] as [String: Any]
        ],
      ]
    }
    let object: [String: Any] = [
      "processes": processes, "ticks": result.ticks, "seconds": rounded(result.seconds),
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
  static func seconds(_ value: Double) -> String { String(format: "%.3fs", value) }
  static func hours(_ value: Double) -> String { String(format: "%.2fh", value / 3600) }
}
