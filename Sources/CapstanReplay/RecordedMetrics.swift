import CapstanCore
import Foundation

/// Metrics recorded over time: the input of `capstan replay`.
public struct RecordedMetrics: Sendable {
  public struct Sample: Sendable {
    public var time: Date
    /// A name absent here had no value (an empty cell, a null, a missing key).
    public var values: [String: Double]
  }

  /// Column names in file order, without `timestamp`.
  public var columns: [String]
  /// Sorted by time.
  public var samples: [Sample]

  public init(columns: [String], samples: [Sample]) {
    self.columns = columns
    self.samples = samples.sorted { $0.time < $1.time }
  }

  /// The `<process>.replicas` column for a process, if the recording has one.
  public static func replicasColumn(for process: String) -> String { "\(process).replicas" }

  /// The `<process>.ready` column: how many of the recording's replicas were ready.
  public static func readyColumn(for process: String) -> String { "\(process).ready" }
}

/// An input file's error at its line: a recording's, or a trace's.
public struct MetricsFileError: Error, CustomStringConvertible, Sendable {
  public var file: String
  public var line: Int
  public var message: String

  public init(file: String, line: Int, message: String) {
    (self.file, self.line, self.message) = (file, line, message)
  }

  public var description: String { "\(file):\(line): error: \(message)" }
}

extension RecordedMetrics {
  /// A byte-order mark goes; a file with old-Mac CR line endings only is read by its CRs.
  static func normalized(_ text: String) -> String {
    var text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
    if !text.utf8.contains(UInt8(ascii: "\n")) && text.utf8.contains(UInt8(ascii: "\r")) {
      text = text.replacingOccurrences(of: "\r", with: "\n")
    }
    return text
  }

  public static func parseCSV(_ text: String, file: String) throws -> RecordedMetrics {
    let text = normalized(text)
    // Splitting bytes rather than Characters, and trimming only cells that need it, took parsing
    // a month of one-minute rows from 787 ms to 319 ms (see Benchmarks/).
    var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).lazy
      .map { line in Substring(line.last == UInt8(ascii: "\r") ? line.dropLast() : line) }
      .enumerated().makeIterator()
    var parser = try CSVRowParser(header: lines.next()?.element, file: file)
    var samples: [Sample] = []
    samples.reserveCapacity(text.utf8.count / 32)
    while let (index, line) = lines.next() {
      if let sample = try parser.parse(line, line: index + 1) { samples.append(sample) }
    }
    return RecordedMetrics(columns: parser.columns, samples: samples)
  }

  /// The rules every row meets: rows in time order; replica and ready counts whole and in
  /// range. A recording that breaks one is refused at that line rather than replayed wrong.
  static func check(_ sample: Sample, after previous: Date?, file: String, line: Int) throws {
    try checkOrder(sample.time, after: previous, file: file, line: line)
    for (column, value) in sample.values where column.hasSuffix(".replicas") || column.hasSuffix(".ready") {
      try checkCount(value, column: column, file: file, line: line)
    }
  }

  static func checkOrder(_ time: Date, after previous: Date?, file: String, line: Int) throws {
    if let previous, time < previous {
      throw MetricsFileError(
        file: file, line: line,
        message:
          "\(RFC3339.string(from: time)) is earlier than the row before (\(RFC3339.string(from: previous))): rows must be in time order; sort the file by its timestamp"
      )
    }
  }

  static func checkCount(_ value: Double, column: String, file: String, line: Int) throws {
    guard value >= 0, value <= Double(PolicyLimits.maxCount), value == value.rounded(), value.sign == .plus
    else {
      throw MetricsFileError(
        file: file, line: line,
        message:
          "'\(value)' in column '\(column)' is not a replica count: write a whole number from 0 to 1000000")
    }
  }

  public static func parseJSONLines(_ text: String, file: String) throws -> RecordedMetrics {
    let text = normalized(text)
    var parser = JSONLinesRowParser(file: file)
    var samples: [Sample] = []
    for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
      .enumerated()
    {
      if let sample = try parser.parse(line, line: index + 1) { samples.append(sample) }
    }
    return RecordedMetrics(columns: parser.columns, samples: samples)
  }

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
      let second = digits(17, 2), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
      second <= 60
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
        let minutes = digits(index + 4, 2)
      else { return nil }
      offset = (hours * 3600 + minutes * 60) * (bytes[index] == 45 ? -1 : 1)
    default: return nil
    }
    return date(year, month, day, hour, minute, second, offset, fraction)
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

/// A JSON Lines value: metrics are numbers or null; only `timestamp` may be text.
private enum JSONCell: Decodable {
  case number(Double)
  case text(String)
  case null

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let number = try? container.decode(Double.self) {
      self = .number(number)
    } else {
      self = .text(try container.decode(String.self))
    }
  }
}

/// A decimal number from a cell's bytes. A year of rows is tens of millions of cells, and a
/// String for each cost more than the rest of the parse, so a plain decimal is read here
/// (`exactDecimal`) and anything else by C's `strtod` from a NUL-ended copy on the stack. The
/// whole cell must be the number; nil otherwise, or for a NUL byte.
func parseNumber(_ cell: UnsafeBufferPointer<UInt8>) -> Double? {
  if let value = exactDecimal(cell) { return value }
  guard !cell.isEmpty, cell.count < 64, !cell.contains(0) else {
    // Longer than any number needs, or not text: the slow path says no as Double(String) does.
    return cell.contains(0) ? nil : Double(String(decoding: cell, as: UTF8.self))
  }
  // strtod skips leading spaces and would read "1e", a "0x" prefix or "infinity" as Double()
  // does not quite; the same characters Double(String) takes are let through.
  guard let first = cell.first, first != 32, first != 9 else { return nil }
  return withUnsafeTemporaryAllocation(of: CChar.self, capacity: cell.count + 1) { copy in
    for index in 0..<cell.count { copy[index] = CChar(bitPattern: cell[index]) }
    copy[cell.count] = 0
    guard let base = copy.baseAddress else { return nil }
    var end: UnsafeMutablePointer<CChar>?
    let value = strtod(base, &end)
    guard let end, end == base + cell.count else { return nil }
    return value
  }
}

/// 10^power for 0...22, the powers of ten a Double holds exactly. A switch of literals, not a
/// global table: a global is checked for its one-time setup on every cell.
private func exactPowerOfTen(_ power: Int) -> Double {
  switch power {
  case 0: 1
  case 1: 1e1
  case 2: 1e2
  case 3: 1e3
  case 4: 1e4
  case 5: 1e5
  case 6: 1e6
  case 7: 1e7
  case 8: 1e8
  case 9: 1e9
  case 10: 1e10
  case 11: 1e11
  case 12: 1e12
  case 13: 1e13
  case 14: 1e14
  case 15: 1e15
  case 16: 1e16
  case 17: 1e17
  case 18: 1e18
  case 19: 1e19
  case 20: 1e20
  case 21: 1e21
  default: 1e22
  }
}

/// A cell of the form `[+-]digits[.digits]` whose digits, read as one integer, fit in 2^53
/// and with at most 22 after the point: the integer and the power of ten are both exact
/// Doubles, so one IEEE division rounds correctly and gives exactly what `strtod` gives (the
/// fast path of Clinger's algorithm). Half of the parse was `strtod`; recorded metrics are
/// almost all of this form. nil for anything else, which `strtod` then reads.
func exactDecimal(_ cell: UnsafeBufferPointer<UInt8>) -> Double? {
  guard let (value, end) = leadingExactDecimal(cell, from: 0), end == cell.count else { return nil }
  return value
}

/// The exact decimal (as `exactDecimal` reads it) that starts at `start`, and where it stops:
/// a row's cells are read where they start, and a cell that stops at its comma needs no other
/// pass over its bytes. nil where no exact decimal starts there.
/// Inlined into the row loop, which calls it for every cell of a recording.
@inline(__always)
func leadingExactDecimal(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (value: Double, end: Int)? {
  var index = start
  let negative = index < bytes.count && bytes[index] == UInt8(ascii: "-")
  if negative || index < bytes.count && bytes[index] == UInt8(ascii: "+") { index += 1 }
  // Wrapping arithmetic: more than 19 digits may wrap, and are refused below by their count.
  var mantissa: UInt64 = 0
  let integerStart = index
  while index < bytes.count, case let digit = bytes[index] &- 48, digit < 10 {
    mantissa = mantissa &* 10 &+ UInt64(digit)
    index += 1
  }
  var digits = index - integerStart
  var fractionDigits = 0
  if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
    index += 1
    let fractionStart = index
    while index < bytes.count, case let digit = bytes[index] &- 48, digit < 10 {
      mantissa = mantissa &* 10 &+ UInt64(digit)
      index += 1
    }
    fractionDigits = index - fractionStart
    digits += fractionDigits
  }
  // 19 digits always fit in a UInt64.
  guard digits > 0, digits <= 19, mantissa <= 1 << 53, fractionDigits <= 22 else { return nil }
  let value = Double(mantissa) / exactPowerOfTen(fractionDigits)
  return (negative ? -value : value, index)
}

/// Reads a CSV recording's rows one at a time, by the rules of the whole file: the header
/// names the columns; each row is a timestamp and numbers (an empty cell is a missing value),
/// in time order.
struct CSVRowParser {
  let file: String
  let header: [String]
  /// Per column after the timestamp: whether it holds a replica count, checked as it is read.
  private let countColumn: [Bool]
  var columns: [String] { Array(header.dropFirst()) }
  private var previous: Date?

  init(header line: Substring?, file: String) throws {
    self.file = file
    guard let line, !line.isEmpty else {
      throw MetricsFileError(
        file: file, line: 1, message: "empty file: the first line must be a header 'timestamp,<metric>,...'")
    }
    header = line.split(separator: ",", omittingEmptySubsequences: false).map {
      $0.trimmingCharacters(in: .whitespaces)
    }
    guard header.first == "timestamp" else {
      throw MetricsFileError(
        file: file, line: 1, message: "the first column must be 'timestamp', found '\(header.first ?? "")'")
    }
    if let duplicate = Dictionary(grouping: header.dropFirst(), by: { $0 }).first(where: {
      $0.value.count > 1
    })?
    .key {
      throw MetricsFileError(file: file, line: 1, message: "column '\(duplicate)' appears twice")
    }
    countColumn = header.dropFirst().map { $0.hasSuffix(".replicas") || $0.hasSuffix(".ready") }
  }

  /// A row's sample, nil for a blank line.
  mutating func parse(_ line: Substring, line lineNumber: Int) throws -> RecordedMetrics.Sample? {
    // A slice of a native string is contiguous, read in place; only a bridged one is copied.
    if let sample = try line.utf8.withContiguousStorageIfAvailable({ try parse($0, line: lineNumber) }) {
      return sample
    }
    var text = String(line)
    return try text.withUTF8 { try parse($0, line: lineNumber) }
  }

  /// A row's bytes: cells are cut and numbers read without building a String per line, since
  /// a year of rows is millions of lines.
  mutating func parse(
    _ line: UnsafeBufferPointer<UInt8>, line lineNumber: Int
  ) throws -> RecordedMetrics.Sample? {
    let header = self.header
    var values: [String: Double] = [:]
    values.reserveCapacity(header.count - 1)
    let time = try cells(line, line: lineNumber) { column, value in values[header[column]] = value }
    return time.map { RecordedMetrics.Sample(time: $0, values: values) }
  }

  /// A row read straight into positions: `projection[column]` is where a column's value goes in
  /// a row of `width`, nil for a column not asked for. No dictionary is built.
  /// - Parameter spare: a finished row's storage to read into, cleared first.
  mutating func parse(
    _ line: UnsafeBufferPointer<UInt8>, line lineNumber: Int, projection: [Int?], width: Int,
    reusing spare: consuming [Double?]? = nil
  ) throws -> RecordedMetrics.Row? {
    var values = (consume spare) ?? []
    if values.count == width {
      for position in values.indices { values[position] = nil }
    } else {
      values = [Double?](repeating: nil, count: width)
    }
    let time = try cells(line, line: lineNumber) { column, value in
      if let position = projection[column] { values[position] = value }
    }
    return time.map { RecordedMetrics.Row(time: $0, values: values) }
  }

  /// Checks every cell of a row and hands each value to `take` with its column (1 is the first
  /// after the timestamp): the row's time, nil for a blank line. Every cell is checked, asked
  /// for or not, so a bad file is refused whatever reads it.
  private mutating func cells(
    _ bytes: UnsafeBufferPointer<UInt8>, line lineNumber: Int,
    take takeValue: (_ column: Int, _ value: Double) -> Void
  ) throws -> Date? {
    func isSpace(_ byte: UInt8) -> Bool {
      byte == 32 || byte == 9 || byte == 13 || byte == 10 || byte == 11 || byte == 12
    }
    // Only a line that starts with a space can be blank: no second pass over every other line.
    if bytes.isEmpty || isSpace(bytes[0]) && bytes.allSatisfy(isSpace) { return nil }
    /// A wrong number of cells, which is reported before anything in the row's cells.
    func countError() -> MetricsFileError? {
      let cells = bytes.reduce(1) { $0 + ($1 == UInt8(ascii: ",") ? 1 : 0) }
      guard cells != header.count else { return nil }
      return MetricsFileError(
        file: file, line: lineNumber, message: "\(cells) cells for \(header.count) columns")
    }
    /// A cell's value, checked as a count where its column holds one.
    func take(_ value: Double, column: Int) throws {
      if countColumn[column - 1] {
        do {
          try RecordedMetrics.checkCount(value, column: header[column], file: file, line: lineNumber)
        } catch {
          throw countError() ?? error
        }
      }
      takeValue(column, value)
    }
    /// Where the cell from `start` ends: its comma, or the end of the line.
    func cellEnd(from start: Int) -> Int {
      var end = start
      while end < bytes.count && bytes[end] != UInt8(ascii: ",") { end += 1 }
      return end
    }
    // One pass: a plain decimal is read where its cell starts and ends at its comma; anything
    // else (spaces, empty, exponents, errors) is cut at its comma and read the long way.
    var time: Date?
    var start = 0
    var column = 0
    // Bounded: every pass moves `start` past the comma that ended the cell before.
    while true {
      if column >= header.count, let error = countError() { throw error }
      let end: Int
      if column == 0 {
        end = cellEnd(from: start)
        do {
          time = try RecordedMetrics.parseTimestamp(
            UnsafeBufferPointer(rebasing: bytes[start..<end]), file: file, line: lineNumber)
        } catch {
          throw countError() ?? error
        }
      } else if let (value, stop) = leadingExactDecimal(bytes, from: start),
        stop == bytes.count || bytes[stop] == UInt8(ascii: ",")
      {
        end = stop
        try take(value, column: column)
      } else {
        end = cellEnd(from: start)
        var cell = bytes[start..<end]
        if cell.first == 32 || cell.first == 9 || cell.last == 32 || cell.last == 9 {
          while let first = cell.first, first == 32 || first == 9 { cell = cell.dropFirst() }
          while let last = cell.last, last == 32 || last == 9 { cell = cell.dropLast() }
        }
        if !cell.isEmpty {
          guard let value = parseNumber(UnsafeBufferPointer(rebasing: cell)), value.isFinite else {
            if let error = countError() { throw error }
            let text = String(decoding: UnsafeBufferPointer(rebasing: cell), as: UTF8.self)
            throw MetricsFileError(
              file: file, line: lineNumber,
              message:
                "'\(text)' in column '\(header[column])' is not a number (leave the cell empty for a missing value)"
            )
          }
          try take(value, column: column)
        }
      }
      column += 1
      if end == bytes.count { break }
      start = end + 1
    }
    if column != header.count, let error = countError() { throw error }
    guard let time else { return nil }
    try RecordedMetrics.checkOrder(time, after: previous, file: file, line: lineNumber)
    previous = time
    return time
  }
}

/// Reads a JSON Lines recording's objects one at a time: a `timestamp` (RFC 3339 text or Unix
/// seconds) and metrics as numbers or nulls, in time order.
struct JSONLinesRowParser {
  let file: String
  /// Every key seen so far but `timestamp`, in the order first seen.
  private(set) var columns: [String] = []
  private var seen: Set<String> = []
  private var previous: Date?
  private let decoder = JSONDecoder()

  init(file: String) { self.file = file }

  mutating func parse(_ line: Substring, line lineNumber: Int) throws -> RecordedMetrics.Sample? {
    if line.allSatisfy(\.isWhitespace) { return nil }
    guard let object = try? decoder.decode([String: JSONCell].self, from: Data(line.utf8)) else {
      throw MetricsFileError(
        file: file, line: lineNumber,
        message: "not a JSON object of numbers and nulls with a \"timestamp\" (RFC 3339 text or Unix seconds)"
      )
    }
    let time: Date
    switch object["timestamp"] {
    case .text(let text)?:
      time = try RecordedMetrics.parseTimestamp(Substring(text), file: file, line: lineNumber)
    case .number(let seconds)?:
      time = try RecordedMetrics.epoch(seconds, text: "\(seconds)", file: file, line: lineNumber)
    default:
      throw MetricsFileError(
        file: file, line: lineNumber, message: "missing \"timestamp\" (RFC 3339 text or Unix seconds)")
    }
    var values: [String: Double] = [:]
    for (key, cell) in object.sorted(by: { $0.key < $1.key }) where key != "timestamp" {
      if seen.insert(key).inserted { columns.append(key) }
      switch cell {
      case .null: continue
      case .number(let value): values[key] = value
      case .text:
        throw MetricsFileError(file: file, line: lineNumber, message: "\"\(key)\" must be a number or null")
      }
    }
    let sample = RecordedMetrics.Sample(time: time, values: values)
    try RecordedMetrics.check(sample, after: previous, file: file, line: lineNumber)
    previous = time
    return sample
  }
}

/// Samples in time order, one at a time.
public protocol RecordedSamples {
  mutating func next() throws -> RecordedMetrics.Sample?
  /// The next sample with only the values of `columns`, in their order: a reader that knows
  /// what it wants takes it by position. Each call must ask for the same columns.
  mutating func next(projectedOnto columns: [String]) throws -> RecordedMetrics.Row?
  /// Hands back a row from `next(projectedOnto:)` that the reader is done with, so a later row
  /// can be read into its storage instead of a new allocation.
  mutating func reuse(_ row: consuming RecordedMetrics.Row)
}

extension RecordedMetrics {
  /// A sample projected onto the columns a reader asked for: `values[i]` is column i's, nil
  /// where it had none.
  public struct Row: Sendable {
    public var time: Date
    public var values: [Double?]
  }
}

extension RecordedSamples {
  public mutating func reuse(_ row: consuming RecordedMetrics.Row) {}

  public mutating func next(projectedOnto columns: [String]) throws -> RecordedMetrics.Row? {
    guard let sample = try next() else { return nil }
    return RecordedMetrics.Row(time: sample.time, values: columns.map { sample.values[$0] })
  }
}

extension RecordedMetrics {
  /// The samples held in memory, in order.
  public struct Cursor: RecordedSamples {
    let samples: [Sample]
    var index = 0
    public mutating func next() -> Sample? {
      guard index < samples.count else { return nil }
      index += 1
      return samples[index - 1]
    }
  }

  public var cursor: Cursor { Cursor(samples: samples) }
}

/// A recording read from its file a line at a time through a fixed buffer, so a year of rows
/// replays in the memory of a day. Each row is checked as it is read; an error names its line.
public struct RecordedMetricsFile: RecordedSamples {
  private let reader: LineReader
  /// One of the two, by the file's name. Held apart rather than in an enum, so a row updates
  /// the parser in place instead of copying it out and back every time.
  private var csv: CSVRowParser?
  private var jsonLines: JSONLinesRowParser?
  /// For `next(projectedOnto:)` on a CSV file: per column of the file, where its value goes.
  private var projection: [Int?]?
  /// Rows' storage handed back by the reader, for the next rows: one row read, one returned.
  private var spares: [[Double?]] = []

  /// Opens the file and reads its header: CSV, or JSON Lines for `.jsonl` and `.ndjson` names.
  public init(path: String) throws {
    reader = try LineReader(path: path)
    if path.hasSuffix(".jsonl") || path.hasSuffix(".ndjson") {
      jsonLines = JSONLinesRowParser(file: path)
    } else {
      csv = try CSVRowParser(header: try reader.nextLine().map { Substring($0) }, file: path)
    }
  }

  /// A CSV file's rows are read straight into positions; JSON Lines go through a sample.
  public mutating func next(projectedOnto columns: [String]) throws -> RecordedMetrics.Row? {
    guard csv != nil else {
      guard let sample = try next() else { return nil }
      return RecordedMetrics.Row(time: sample.time, values: columns.map { sample.values[$0] })
    }
    if projection == nil, let header = csv?.header {
      let position = Dictionary(
        columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
      projection = header.map { position[$0] }
    }
    let map = projection ?? []
    while true {
      // Moved, not copied, into the parser, so the storage it writes has one owner.
      var spare = spares.popLast()
      let read = try reader.next { line, number in
        try csv?.parse(line, line: number, projection: map, width: columns.count, reusing: spare.take())
      }
      guard let read else { return nil }
      if let row = read { return row }
    }
  }

  public mutating func reuse(_ row: consuming RecordedMetrics.Row) {
    if spares.count < 4 { spares.append(row.values) }
  }

  public mutating func next() throws -> RecordedMetrics.Sample? {
    while true {
      let read: RecordedMetrics.Sample??
      if csv != nil {
        read = try reader.next { line, number in try csv?.parse(line, line: number) }
      } else {
        read = try reader.next { line, number in
          try jsonLines?.parse(Substring(decoding: line, as: UTF8.self), line: number)
        }
      }
      guard let read else { return nil }
      if let sample = read { return sample }
    }
  }
}
