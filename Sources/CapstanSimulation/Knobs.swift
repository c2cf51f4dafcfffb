import CapstanCore
import Foundation
import Yams

/// A value the policy file writes that `tune` may change: where it is in the file, what it is,
/// the values to try, and how a candidate policy takes one. Only values written in the file are
/// knobs, so the tuned file differs from the original in those values alone.
public struct Knob: Sendable {
  /// The process whose value it is.
  public var process: String
  public var name: String
  /// 1-based, as the parser reports it.
  public var line: Int
  public var column: Int
  /// The scalar as written, replaced in the tuned file.
  public var written: String
  /// Its value as the policy has it.
  public var current: Double
  /// Other values to try.
  public var candidates: [Double]
  let format: @Sendable (Double) -> String
  let apply: @Sendable (inout ScalingTarget, Double) -> Void

  public func text(_ value: Double) -> String { format(value) }

  /// The target as it is with this knob at `value`.
  public func applied(to target: ScalingTarget, _ value: Double) -> ScalingTarget {
    var target = target
    apply(&target, value)
    return target
  }
}

extension Knob {
  /// The knobs of the traced processes that the file writes where they are used, so that
  /// `rewrite` can change each alone.
  public static func find(in yaml: String, policy: Policy, processes: [String]) -> [Knob] {
    let lines = yamlLines(yaml).map(\.text)
    return all(in: yaml, policy: policy, processes: processes).filter { $0.range(in: lines) != nil }
  }

  /// The values of the traced processes that the file writes through a YAML anchor: `tune`
  /// leaves them as they are, since changing one would change every place that uses it.
  public static func anchored(in yaml: String, policy: Policy, processes: [String]) -> [String] {
    let lines = yaml.components(separatedBy: "\n")
    return all(in: yaml, policy: policy, processes: processes).filter { $0.range(in: lines) == nil }.map(
      \.name)
  }

  /// Where the knob's scalar stands in its line, as written (inside its quotes); nil where the
  /// line holds something else there (an anchor, `&name value`, or a file changed since).
  func range(in lines: [String]) -> Range<Int>? {
    guard line >= 1, line <= lines.count else { return nil }
    let scalars = Array(lines[line - 1].unicodeScalars)
    let start = column - 1
    let written = Array(self.written.unicodeScalars)
    guard start >= 0, start < scalars.count else { return nil }
    // A quoted scalar starts with its quote: keep the quotes.
    let from = scalars[start] == "\"" || scalars[start] == "'" ? start + 1 : start
    guard from + written.count <= scalars.count, Array(scalars[from..<(from + written.count)]) == written
    else { return nil }
    return from..<(from + written.count)
  }

  private static func all(in yaml: String, policy: Policy, processes: [String]) -> [Knob] {
    guard let root = try? PolicyLoader.compose(yaml: yaml) else { return [] }
    var knobs: [Knob] = []
    for name in processes {
      guard let target = policy.simulatedProcess(named: name) else { continue }
      let process = root["processes"]?[name]
      let rules = target.policyName.flatMap { root["autoscaling"]?[$0] }
      func add(
        _ label: String, _ node: Node?, current: Double?, _ candidates: [Double],
        format: @escaping @Sendable (Double) -> String,
        apply: @escaping @Sendable (inout ScalingTarget, Double) -> Void
      ) {
        guard let node, let scalar = node.scalar, let mark = node.mark, let current else { return }
        let values = Array(Set(candidates.filter { $0.isFinite && $0 >= 0 && $0 != current })).sorted()
        guard !values.isEmpty else { return }
        knobs.append(
          Knob(
            process: name, name: "\(name).\(label)", line: mark.line, column: mark.column,
            written: scalar.string,
            current: current, candidates: values, format: format, apply: apply))
      }
      if let tracking = target.tracking {
        let percent = tracking.kind == .utilization
        add(
          "scaling.target", process?["scaling"]?["target"], current: tracking.target,
          [0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.2, 1.35, 1.5].map {
            ($0 * tracking.target * 100).rounded() / 100
          },
          format: { percent ? "\(Quantity.exact($0))%" : Quantity.exact($0) },
          apply: { $0.tracking?.target = $1 })
      }
      let floor = target.workloadClass == .interactive ? 1 : 0
      add(
        "scaling.min", process?["scaling"]?["min"], current: Double(target.min),
        (floor...min(target.max, target.min + 3)).map(Double.init), format: { String(Int($0)) },
        apply: { $0.min = Int($1) })
      // max bounds the oracle as it bounds the policy: candidates from half to twice it, never
      // below min or 1.
      add(
        "scaling.max", process?["scaling"]?["max"], current: Double(target.max),
        [0.5, 0.75, 1.25, 1.5, 2].map {
          max((Double(target.max) * $0).rounded(), Double(max(target.min, 1)))
        },
        format: { String(Int($0)) }, apply: { $0.max = Int($1) })
      let windows: [(ScaleDirection, String, [Double])] = [
        (.up, "scale_up", [0, 15, 30, 60, 120]), (.down, "scale_down", [0, 60, 120, 300, 600, 900]),
      ]
      for (direction, key, values) in windows {
        let section = rules?[key]
        let own = target.rules(direction)
        add(
          "\(key).stabilization_window", section?["stabilization_window"], current: own.stabilization, values,
          format: seconds,
          apply: { target, value in
            if direction == .up { target.up.stabilization = value } else { target.down.stabilization = value }
          })
        add(
          "\(key).action.cooldown", section?["action"]?["cooldown"], current: own.cooldown,
          [0, 30, 60, 120, 300],
          format: seconds,
          apply: { target, value in
            if direction == .up { target.up.cooldown = value } else { target.down.cooldown = value }
          })
        add(
          "\(key).action.\(direction == .up ? "add" : "remove")_instances",
          section?["action"]?[direction == .up ? "add_instances" : "remove_instances"],
          current: own.step.map(Double.init), [1, 2, 3, 4, 6],
          format: { String(Int($0)) },
          apply: { target, value in
            if direction == .up { target.up.step = Int(value) } else { target.down.step = Int(value) }
          })
        // Each condition's threshold, kept in its unit.
        let rule = direction == .up ? target.up.rule : target.down.rule
        for (index, condition) in (rule?.conditions ?? []).enumerated() {
          let node = section?["conditions"]?.sequence?.first {
            $0["metric"]?.scalar?.string == condition.text
          }?["metric"]
          let threshold = condition.threshold
          let prefix = condition.text.prefix { !"<>=!".contains($0) } + condition.op.rawValue + " "
          add(
            "\(key).conditions[\(index)]", node, current: threshold.value,
            [0.5, 0.75, 1, 1.25, 1.5, 2].map { ($0 * threshold.value * 100).rounded() / 100 },
            format: {
              "\(prefix.trimmingCharacters(in: .whitespaces)) \(Quantity.format(Threshold(value: $0, unit: threshold.unit), exact: true))"
            },
            apply: { target, value in
              if direction == .up {
                target.up.rule?.conditions[index].threshold.value = value
              } else {
                target.down.rule?.conditions[index].threshold.value = value
              }
            })
        }
      }
    }
    return knobs
  }

  /// The file with each knob's value replaced at its position: nothing else changes.
  public static func rewrite(_ yaml: String, _ values: [(knob: Knob, value: Double)]) -> String {
    let split = yamlLines(yaml)
    var lines = split.map(\.text)
    // From the end of each line, so earlier columns stay where they were.
    for (knob, value) in values.sorted(by: { ($0.knob.line, $0.knob.column) > ($1.knob.line, $1.knob.column) }
    ) {
      // `find` gives only knobs written in place, in the text it was given.
      guard let range = knob.range(in: lines) else { continue }
      var scalars = Array(lines[knob.line - 1].unicodeScalars)
      scalars.replaceSubrange(range, with: knob.text(value).unicodeScalars)
      var line = ""
      line.unicodeScalars.append(contentsOf: scalars)
      lines[knob.line - 1] = line
    }
    return zip(lines, split).map { $0 + $1.end }.joined()
  }

  /// The lines of a YAML text as YAML counts them, each with the break that ends it: a line ends
  /// at LF, CR LF, a lone CR, NEL, LS or PS (YAML 1.1, which libyaml reads), so a knob's line
  /// is the parser's, and a rewrite keeps every byte it does not change.
  static func yamlLines(_ text: String) -> [(text: String, end: String)] {
    var lines: [(text: String, end: String)] = []
    var current = String.UnicodeScalarView()
    var scalars = text.unicodeScalars.makeIterator()
    var pending = scalars.next()
    while let scalar = pending {
      pending = scalars.next()
      switch scalar {
      case "\r" where pending == "\n":
        pending = scalars.next()
        lines.append((String(current), "\r\n"))
        current = String.UnicodeScalarView()
      case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}":
        lines.append((String(current), String(scalar)))
        current = String.UnicodeScalarView()
      default:
        current.append(scalar)
      }
    }
    lines.append((String(current), ""))
    return lines
  }
}

/// A duration as the policy file writes one.
private func seconds(_ value: Double) -> String {
  value.truncatingRemainder(dividingBy: 60) == 0 && value >= 60 ? "\(Int(value / 60))m" : "\(Int(value))s"
}
