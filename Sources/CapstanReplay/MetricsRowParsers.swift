import CapstanCore
import Foundation

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
