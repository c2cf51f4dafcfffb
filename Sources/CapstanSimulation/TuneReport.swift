import CapstanCore
import Foundation

/// What a tune found: the winner and the runners-up beside the file's own settings, each scored
/// on the tuning part and the holdout.
public enum TuneReport {
  public static func text(_ outcome: Tuner.Outcome, candidates: Int, holdout: Double, seed: UInt64) -> String
  {
    var out =
      "Tuned on the first \(hours(outcome.split.tuningSeconds)) of the traces, scored on the last \(hours(outcome.split.holdoutSeconds)) (holdout \(Ceilings.format(holdout * 100))%): \(candidates) candidates, seed \(seed), \(outcome.knobs.count) knobs\n\n"
    let rows: [(String, Tuner.Score, Tuner.Score?, String)] =
      [
        (
          "as written", outcome.original.tuning, outcome.original.holdout,
          changes(outcome.original, outcome.knobs)
        )
      ]
      + outcome.ranked.prefix(5).enumerated().map {
        ("#\($0 + 1)", $1.tuning, $1.holdout, changes($1, outcome.knobs))
      }
      + [
        ("oracle", outcome.oracle.tuning, outcome.oracle.holdout, "(the yardstick: x oracle is against it)"),
        ("static", outcome.staticPool.tuning, outcome.staticPool.holdout, "(the best fixed pool)"),
      ]
    let oracle = outcome.oracle.holdout?.cost
    out += "  run         tuning: cost   worst SLO   holdout: cost   worst SLO   x oracle   changes\n"
    for (label, tuning, holdout, changed) in rows {
      let ratio = holdout.flatMap { score in
        oracle.map { $0 > 0 ? String(format: "%.2f", score.cost / $0) : "-" }
      }
      out +=
        "  \(label.padding(toLength: 10, withPad: " ", startingAt: 0))  \(pad(cost(tuning), 13))  \(pad(slo(tuning), 10))  \(pad(holdout.map(cost) ?? "-", 14))  \(pad(holdout.map(slo) ?? "-", 10))  \(pad(ratio ?? "-", 9))   \(changed)\n"
    }
    out += "\n\(SimulationReport.startSentence(outcome.start, capitalized: true)).\n"
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
    func baseline(_ scores: (tuning: Tuner.Score, holdout: Tuner.Score?)) -> [String: Any] {
      var object: [String: Any] = ["tuning": score(scores.tuning)]
      if let holdout = scores.holdout { object["holdout"] = score(holdout) }
      return object
    }
    let object: [String: Any] = [
      "original": entry(outcome.original),
      "winner": outcome.ranked.first.map(entry) ?? [:],
      "runners_up": outcome.ranked.dropFirst().prefix(4).map(entry),
      "knobs": outcome.knobs.map { ["name": $0.name, "line": $0.line, "written": $0.written] },
      "oracle": baseline(outcome.oracle), "static": baseline(outcome.staticPool),
      "start": outcome.start.rawValue,
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
