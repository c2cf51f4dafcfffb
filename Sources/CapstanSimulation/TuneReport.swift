import CapstanCore
import Foundation

/// What a tune found: the winner and the runners-up beside the file's own settings, each scored
/// on the tuning part and the holdout.
public enum TuneReport {
  public static func text(_ outcome: Tuner.Outcome, candidates: Int, holdout: Double, seed: UInt64) -> String
  {
    var out =
      "Tuned on the first \(hours(outcome.split.tuningSeconds)) of the traces, scored on the last \(hours(outcome.split.holdoutSeconds)) (holdout \(Ceilings.format(holdout * 100))%): \(candidates) candidates, seed \(seed), \(outcome.knobs.count) knobs\n\n"
    let rows =
      [("as written", outcome.original)] + outcome.ranked.prefix(5).enumerated().map { ("#\($0 + 1)", $1) }
    out += "  run         tuning: cost   worst SLO   holdout: cost   worst SLO   changes\n"
    for (label, candidate) in rows {
      out +=
        "  \(label.padding(toLength: 10, withPad: " ", startingAt: 0))  \(pad(cost(candidate.tuning), 13))  \(pad(slo(candidate.tuning), 10))  \(pad(candidate.holdout.map(cost) ?? "-", 14))  \(pad(candidate.holdout.map(slo) ?? "-", 10))   \(changes(candidate, outcome.knobs))\n"
    }
    return out
  }

  public static func json(_ outcome: Tuner.Outcome) -> String {
    func entry(_ candidate: Tuner.Candidate) -> [String: Any] {
      var object: [String: Any] = [
        "tuning": score(candidate.tuning),
        "changes": Dictionary(
          uniqueKeysWithValues: zip(outcome.knobs, candidate.values).compactMap { knob, value in
            value.map { (knob.name, knob.text($0)) }
          }),
      ]
      if let holdout = candidate.holdout { object["holdout"] = score(holdout) }
      return object
    }
    let object: [String: Any] = [
      "original": entry(outcome.original),
      "winner": outcome.ranked.first.map(entry) ?? [:],
      "runners_up": outcome.ranked.dropFirst().prefix(4).map(entry),
      "knobs": outcome.knobs.map { ["name": $0.name, "line": $0.line, "written": $0.written] },
    ]
    guard
      let data = try? JSONSerialization.data(
        withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    else { return "{}\n" }
    return String(decoding: data, as: UTF8.self) + "\n"
  }

  static func score(_ score: Tuner.Score) -> [String: Any] {
    [
      "feasible": score.feasible, "cost": SimulationReport.rounded(score.cost),
      "worst_slo_attainment": SimulationReport.rounded(score.attainment),
    ]
  }

  static func changes(_ candidate: Tuner.Candidate, _ knobs: [Knob]) -> String {
    let changed = zip(knobs, candidate.values).compactMap { knob, value in
      value.map { "\(knob.name) \(knob.written) -> \(knob.text($0))" }
    }
    return changed.isEmpty ? "(none)" : changed.joined(separator: ", ")
  }

  static func cost(_ score: Tuner.Score) -> String { String(format: "%.2f", score.cost) }
  static func slo(_ score: Tuner.Score) -> String {
    String(format: "%.2f%%", score.attainment * 100) + (score.feasible ? "" : " x")
  }
  static func hours(_ seconds: Double) -> String { SimulationReport.hours(seconds) }
  static func pad(_ text: String, _ width: Int) -> String { SimulationReport.pad(text, width) }
}
