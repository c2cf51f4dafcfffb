import Foundation

/// Parsers for the units a policy file is written in. Each failure names the unit it expected,
/// so callers can attach the location.
public enum Quantity {
  /// `300s`, `10m`, `1h`, `250ms`, `1h30m`, `14d`. A bare number is rejected: a duration without a unit
  /// is the commonest way to be off by 60x.
  public static func duration(_ text: String, longest: TimeInterval = PolicyLimits.maxDuration) -> Result<
    TimeInterval, QuantityError
  > {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if Double(trimmed) != nil {
      return .failure(.init("'\(text)' has no unit: write a duration such as 300s, 10m or 1h"))
    }
    var total: TimeInterval = 0
    var seenUnits: Set<String> = []
    var rest = Substring(trimmed)
    if rest.isEmpty { return .failure(.init("empty duration: write one such as 300s, 10m or 1h")) }
    while !rest.isEmpty {
      let number = rest.prefix { $0.isNumber || $0 == "." }
      guard let value = Double(number), value >= 0 else {
        return .failure(.init("'\(text)' is not a duration: write one such as 300s, 10m or 1h"))
      }
      rest = rest.dropFirst(number.count)
      let unit = rest.prefix { $0.isLetter }
      rest = rest.dropFirst(unit.count)
      guard let scale = durationUnits[String(unit)] else {
        let shown = unit.isEmpty ? "no unit" : "unit '\(unit)'"
        return .failure(
          .init("'\(text)' has \(shown): a duration takes ms, s, m, h or d (for example 300s, 10m, 1h, 14d)"))
      }
      guard seenUnits.insert(String(unit)).inserted else {
        return .failure(.init("'\(text)' gives '\(unit)' twice: write each unit once, such as 1h30m"))
      }
      total += value * scale
    }
    guard total <= longest else {
      return .failure(
        .init(
          longest == PolicyLimits.maxDuration
            ? "'\(text)' is longer than a week (168h), the longest duration Capstan takes"
            : "'\(text)' is longer than \(DurationText.of(longest)), the longest this takes"))
    }
    return .success(total)
  }

  static let durationUnits: [String: TimeInterval] = ["ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400]

  /// `70%` → 70. Percent values stay on the 0–100 scale, the scale percent metrics are recorded on.
  static func percent(_ text: String) -> Result<Double, QuantityError> {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard trimmed.hasSuffix("%"), let value = Double(trimmed.dropLast()), value.isFinite else {
      return .failure(.init("'\(text)' is not a percent: write one such as 70%"))
    }
    guard abs(value) <= PolicyLimits.maxMagnitude else { return .failure(tooLarge(text)) }
    return .success(value)
  }

  /// Kubernetes quantities for memory: `512Mi`, `2Gi`, `1G`, `1500000`. Returns bytes.
  static func memory(_ text: String) -> Result<Double, QuantityError> {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let number = trimmed.prefix { $0.isNumber || $0 == "." }
    let unit = String(trimmed.dropFirst(number.count))
    guard let value = Double(number), value.isFinite, value * (memoryUnits[unit] ?? 1) <= 1e18,
      let scale = memoryUnits[unit]
    else {
      return .failure(
        .init(
          "'\(text)' is not a memory size: write one such as 512Mi, 2Gi or 1G (Ki, Mi, Gi, Ti, K, M, G, T)"))
    }
    return .success(value * scale)
  }

  static let memoryUnits: [String: Double] = [
    "": 1, "Ki": 1024, "Mi": 1_048_576, "Gi": 1_073_741_824, "Ti": 1_099_511_627_776,
    "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
  ]

  /// A plain number; `$` and thousands separators are refused rather than guessed at.
  static func number(_ text: String, what: String) -> Result<Double, QuantityError> {
    guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
      return .failure(.init("'\(text)' is not a number: \(what)"))
    }
    guard abs(value) <= PolicyLimits.maxMagnitude else { return .failure(tooLarge(text)) }
    return .success(value)
  }

  static func tooLarge(_ text: String) -> QuantityError {
    .init("'\(text)' is out of range: Capstan takes numbers up to 1e15 in size")
  }

  static func count(_ text: String, what: String) -> Result<Int, QuantityError> {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard let value = Int(trimmed), value >= 0 else {
      return .failure(.init("'\(text)' is not a whole number of \(what): write 0 or more, without units"))
    }
    guard value <= PolicyLimits.maxCount else {
      return .failure(.init("'\(text)' \(what) is out of range: Capstan takes counts up to 1000000"))
    }
    return .success(value)
  }

  /// A threshold in a condition: `50`, `20%`, `5s`, `250ms`, `10m`, `1h`. Times become seconds,
  /// percents stay on the 0–100 scale; the unit is kept so messages can echo it.
  static func threshold(_ text: String) -> Result<Threshold, QuantityError> {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if let value = Double(trimmed) {
      guard value.isFinite else {
        return .failure(
          .init("'\(text)' is not a threshold: write a finite number, optionally with %, ms, s, m or h"))
      }
      guard abs(value) <= PolicyLimits.maxMagnitude else { return .failure(tooLarge(text)) }
      return .success(Threshold(value: value, unit: .none))
    }
    if trimmed.hasSuffix("%") {
      return percent(trimmed).map { Threshold(value: $0, unit: .percent) }
    }
    let number = trimmed.prefix { $0.isNumber || $0 == "." || $0 == "-" }
    let unit = trimmed.dropFirst(number.count)
    guard let value = Double(number), value.isFinite else {
      return .failure(.init("'\(text)' is not a threshold: write a number, optionally with %, ms, s, m or h"))
    }
    guard abs(value) <= PolicyLimits.maxMagnitude else { return .failure(tooLarge(text)) }
    switch unit {
    case "ms": return .success(Threshold(value: value / 1000, unit: .milliseconds))
    case "s": return .success(Threshold(value: value, unit: .seconds))
    case "m": return .success(Threshold(value: value * 60, unit: .minutes))
    case "h": return .success(Threshold(value: value * 3600, unit: .hours))
    default:
      return .failure(.init("'\(text)' has unit '\(unit)': a threshold takes %, ms, s, m or h, or no unit"))
    }
  }
}

extension Quantity {
  /// A threshold written back in its own unit: 20%, 250ms, 5s, 10m, 1h or a plain number.
  /// - Parameter exact: the value to the last digit that reads back the same (`exact(_:)`), as
  ///   a file `tune` writes needs; else to four significant digits, as a record shows it.
  public static func format(_ threshold: Threshold, exact: Bool = false) -> String {
    func number(_ value: Double) -> String { exact ? Self.exact(value) : Ceilings.format(value) }
    switch threshold.unit {
    case .none: return number(threshold.value)
    case .percent: return "\(number(threshold.value))%"
    case .milliseconds: return "\(number(threshold.value * 1000))ms"
    case .seconds: return "\(number(threshold.value))s"
    case .minutes: return "\(number(threshold.value / 60))m"
    case .hours: return "\(number(threshold.value / 3600))h"
    }
  }

  /// A number as a policy file may write it, exactly: the shortest text that reads back as the
  /// same value, a whole number without a point.
  public static func exact(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
  }
}

public struct QuantityError: Error, CustomStringConvertible {
  public var message: String
  public var description: String { message }
  init(_ message: String) { self.message = message }
}

/// A condition's right-hand side, normalised: seconds for times, 0–100 for percents.
public struct Threshold: Hashable, Sendable {
  public enum Unit: String, Sendable { case none, percent, milliseconds, seconds, minutes, hours }
  public var value: Double
  public var unit: Unit

  public init(value: Double, unit: Unit) {
    self.value = value
    self.unit = unit
  }
}
