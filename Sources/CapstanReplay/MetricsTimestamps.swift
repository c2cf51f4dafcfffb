import CapstanCore
import Foundation

extension RecordedMetrics {
  /// RFC 3339 text (any offset, optional fraction) or Unix seconds.
  public static func timestamp(_ text: String) -> Date? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if let seconds = Double(trimmed) { return Date(timeIntervalSince1970: seconds) }
    return RFC3339Parser.parse(trimmed)
  }

  /// Timestamps from 1970 to 2200: outside that, a row is a typo or the wrong unit, and
  /// replaying up to it would take years of ticks.
  static let earliest = Date(timeIntervalSince1970: 0)
  static let latest = Date(timeIntervalSince1970: 7_258_118_400)  // 2200-01-01

  /// - Parameter text: the cell as written, for the error only.
  static func epoch(_ seconds: Double, text: @autoclosure () -> String, file: String, line: Int) throws
    -> Date
  {
    let date = Date(timeIntervalSince1970: seconds)
    if seconds.isFinite, date >= earliest, date <= latest { return date }
    let hint =
      seconds.isFinite && Date(timeIntervalSince1970: seconds / 1000) <= latest && seconds > 0
      ? ": it looks like Unix milliseconds; write seconds (divide by 1000)" : ""
    throw MetricsFileError(
      file: file, line: line,
      message: "'\(text())' is not a time between 1970 and 2200 in Unix seconds\(hint)")
  }

  static func parseTimestamp(_ text: Substring, file: String, line: Int) throws -> Date {
    var text = String(text)
    return try text.withUTF8 { try parseTimestamp($0, file: file, line: line) }
  }

  /// RFC 3339 or Unix seconds, from a cell's bytes (spaces around it allowed). `assumingUTC`
  /// also takes a date and time with no offset, as the Azure traces write them, as UTC.
  public static func parseTimestamp(
    _ cell: UnsafeBufferPointer<UInt8>, file: String, line: Int, assumingUTC: Bool = false
  ) throws -> Date {
    if cell.contains(0) {
      throw MetricsFileError(
        file: file, line: line, message: "a NUL byte in the timestamp: the file is not text")
    }
    var lower = 0
    var upper = cell.count
    while lower < upper && (cell[lower] == 32 || cell[lower] == 9) { lower += 1 }
    while upper > lower && (cell[upper - 1] == 32 || cell[upper - 1] == 9) { upper -= 1 }
    let bytes = UnsafeBufferPointer(rebasing: cell[lower..<upper])
    // A date's year is followed by '-': no number to try. The text is made only for an error,
    // as a String for every row cost as much as reading the date.
    let dated = bytes.count > 4 && bytes[4] == 45
    if !dated, let seconds = parseNumber(bytes) {
      return try epoch(seconds, text: String(decoding: bytes, as: UTF8.self), file: file, line: line)
    }
    var trimmed: String { String(decoding: bytes, as: UTF8.self) }
    if let date = RFC3339Parser.parse(bytes, assumingUTC: assumingUTC) {
      guard date >= earliest, date <= latest else {
        throw MetricsFileError(
          file: file, line: line, message: "'\(trimmed)' is not between 1970 and 2200: is the year a typo?")
      }
      return date
    }
    throw MetricsFileError(
      file: file, line: line,
      message: "'\(trimmed)' is not a timestamp: use RFC 3339 (2026-11-16T00:00:00Z) or Unix seconds")
  }
}

/// `2026-11-16T00:00:00Z`, `2026-11-16T00:00:00.250+01:00`. Hand-written because recordings
/// run to hundreds of thousands of rows and the Foundation formatters dominate the replay time.
public enum RFC3339Parser {
  public static func parse(_ text: String) -> Date? {
    var text = text
    return text.withUTF8 { parse($0) }
  }

  /// Parses the bytes of one timestamp. `assumingUTC` also takes one with no offset at all
  /// (`2023-11-16 18:17:03.98`, as the Azure traces write it) as UTC.
  public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, assumingUTC: Bool = false) -> Date? {
    guard bytes.count >= (assumingUTC ? 19 : 20) else { return nil }
    // Every field read below lies within the length checked above, and the offset's within
    // the length it checks first.
    func digits(_ start: Int, _ count: Int) -> Int? {
      var value = 0
      for index in start..<(start + count) {
        let digit = bytes[index] &- 48
        guard digit < 10 else { return nil }
        value = value &* 10 &+ Int(digit)
      }
      return value
    }
    guard let year = digits(0, 4), bytes[4] == 45, let month = digits(5, 2), bytes[7] == 45,
      let day = digits(8, 2), bytes[10] == 84 || bytes[10] == 116 || bytes[10] == 32,
      let hour = digits(11, 2), bytes[13] == 58, let minute = digits(14, 2), bytes[16] == 58,
      let second = digits(17, 2), (1...12).contains(month), day >= 1, day <= days(in: month, of: year),
      hour < 24,
      minute < 60, second < 60
    else { return nil }
    var index = 19
    var fraction = 0.0
    if index < bytes.count, bytes[index] == 46 {
      index += 1
      var scale = 0.1
      let start = index
      while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
        fraction += Double(bytes[index] - 48) * scale
        scale /= 10
        index += 1
      }
      guard index > start else { return nil }
    }
    var offset = 0
    if index == bytes.count && assumingUTC {
      return date(year, month, day, hour, minute, second, 0, fraction)
    }
    guard index < bytes.count else { return nil }
    switch bytes[index] {
    case 90, 122:
      guard index + 1 == bytes.count else { return nil }
    case 43, 45:
      guard index + 6 == bytes.count, let hours = digits(index + 1, 2), bytes[index + 3] == 58,
        let minutes = digits(index + 4, 2), hours < 24, minutes < 60
      else { return nil }
      offset = (hours * 3600 + minutes * 60) * (bytes[index] == 45 ? -1 : 1)
    default: return nil
    }
    return date(year, month, day, hour, minute, second, offset, fraction)
  }

  /// The days of a month of the Gregorian calendar: a recording's 30 February is a typo, not
  /// 2 March. (A leap second, :60, is refused too: no recorder writes one.)
  static func days(in month: Int, of year: Int) -> Int {
    switch month {
    case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
    case 4, 6, 9, 11: 30
    default: 31
    }
  }

  private static func date(
    _ year: Int, _ month: Int, _ day: Int, _ hour: Int, _ minute: Int, _ second: Int, _ offset: Int,
    _ fraction: Double
  ) -> Date {
    // Days from the civil date (Howard Hinnant's algorithm), so no time zone database is read.
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    let days = era * 146_097 + dayOfEra - 719_468
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
    return Date(timeIntervalSince1970: Double(seconds) + fraction)
  }
}
