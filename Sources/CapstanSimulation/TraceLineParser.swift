import CapstanCore
import CapstanReplay
import Foundation

/// Reads a trace's lines in order: the format is detected from the first, and each later line
/// gives a request (nil for a blank line) or an error at its line.
struct TraceLineParser {
  private enum Format {
    case csv(kind: Trace.Kind, columns: [String])
    case mooncake
  }

  let file: String
  private let format: Format
  /// The first request's wall-clock time: arrivals count from it.
  private var origin: Date?
  private var previous: Double?
  private let decoder = JSONDecoder()

  /// The Mooncake format has no header: its first line is a request.
  var firstLineIsRequest: Bool {
    if case .mooncake = format { return true }
    return false
  }

  var kind: Trace.Kind {
    switch format {
    case .csv(let kind, _): kind
    case .mooncake: .llm
    }
  }

  /// The Mooncake format counts from its start; a fixed origin keeps runs reproducible.
  var start: Date { origin ?? Date(timeIntervalSince1970: 1_704_067_200) }

  init(header line: String, file: String) throws {
    self.file = file
    let header = line.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\u{FEFF}", with: "")
    if header.hasPrefix("{") {
      format = .mooncake
      return
    }
    let columns = header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    switch columns {
    case ["TIMESTAMP", "ContextTokens", "GeneratedTokens"], ["timestamp", "input_tokens", "output_tokens"]:
      format = .csv(kind: .llm, columns: columns)
    case ["timestamp", "work_seconds"]: format = .csv(kind: .jobs, columns: columns)
    default:
      throw TraceError(
        file: file, line: 1,
        message:
          "unknown trace header '\(header.prefix(80))': expected TIMESTAMP,ContextTokens,GeneratedTokens (Azure), timestamp,input_tokens,output_tokens, timestamp,work_seconds, or Mooncake JSON Lines"
      )
    }
  }

  mutating func parse(_ line: Substring, line number: Int) throws -> Trace.Request? {
    var text = String(line)
    return try text.withUTF8 { try parse($0, line: number) }
  }

  /// One line's bytes: a request, nil for a blank line, or an error at the line.
  mutating func parse(_ line: UnsafeBufferPointer<UInt8>, line number: Int) throws -> Trace.Request? {
    if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { return nil }
    let parsed: Trace.Request
    switch format {
    case .mooncake: parsed = try mooncake(line, line: number)
    case .csv(let kind, let columns):
      parsed = try csv(line, kind: kind, columns: columns, line: number)
    }
    var request = parsed
    request.line = number
    if let previous, request.arrival < previous {
      throw TraceError(
        file: file, line: number,
        message: "this request arrives before the one on the line above: sort the trace by its timestamp")
    }
    previous = request.arrival
    return request
  }

  /// Reads the cells as bytes: the traces run to millions of lines, and the String and
  /// Foundation calls this replaces made reading a line cost several microseconds.
  private mutating func csv(
    _ line: UnsafeBufferPointer<UInt8>, kind: Trace.Kind, columns: [String], line number: Int
  ) throws -> Trace.Request {
    var cells: [Range<Int>] = []
    cells.reserveCapacity(3)
    var start = 0
    for index in 0...line.count where index == line.count || line[index] == UInt8(ascii: ",") {
      var lower = start
      var upper = index
      while lower < upper && (line[lower] == 32 || line[lower] == 9) { lower += 1 }
      while upper > lower && (line[upper - 1] == 32 || line[upper - 1] == 9) { upper -= 1 }
      cells.append(lower..<upper)
      start = index + 1
    }
    guard cells.count == columns.count else {
      throw TraceError(file: file, line: number, message: "\(cells.count) cells for \(columns.count) columns")
    }
    let time = try timestamp(UnsafeBufferPointer(rebasing: line[cells[0]]), line: number)
    let origin = self.origin ?? time
    self.origin = origin
    let first = try amount(UnsafeBufferPointer(rebasing: line[cells[1]]), column: columns[1], line: number)
    let arrival = time.timeIntervalSince(origin)
    guard kind == .llm else { return Trace.Request(arrival: arrival, workSeconds: first) }
    let second = try amount(UnsafeBufferPointer(rebasing: line[cells[2]]), column: columns[2], line: number)
    return Trace.Request(arrival: arrival, inputTokens: first, outputTokens: second)
  }

  /// A Mooncake line as `JSONDecoder` reads it: the judge of every line the scanner does not
  /// read plainly.
  struct MooncakeLine: Decodable {
    var timestamp: Double
    var inputLength: Double
    var outputLength: Double
    enum CodingKeys: String, CodingKey {
      case timestamp
      case inputLength = "input_length"
      case outputLength = "output_length"
    }
  }

  private func mooncake(_ line: UnsafeBufferPointer<UInt8>, line number: Int) throws -> Trace.Request {
    // Most lines are plain: read at the speed of a CSV row. The rest are JSONDecoder's to judge.
    let parsed: MooncakeLine
    if let values = JSONLineScanner.numbers(["timestamp", "input_length", "output_length"], in: line) {
      parsed = MooncakeLine(timestamp: values[0], inputLength: values[1], outputLength: values[2])
    } else if let decoded = try? decoder.decode(MooncakeLine.self, from: Data(line)) {
      parsed = decoded
    } else {
      throw TraceError(
        file: file, line: number,
        message:
          "not a Mooncake request: expected {\"timestamp\": MS, \"input_length\": N, \"output_length\": N}")
    }
    for (name, value) in [
      ("timestamp", parsed.timestamp), ("input_length", parsed.inputLength),
      ("output_length", parsed.outputLength),
    ] where !value.isFinite || value < 0 || value > PolicyLimits.maxMagnitude {
      throw TraceError(file: file, line: number, message: "\(name) is \(value): write a number of 0 or more")
    }
    return Trace.Request(
      arrival: parsed.timestamp / 1000, inputTokens: parsed.inputLength, outputTokens: parsed.outputLength)
  }

  /// RFC 3339, Unix seconds, or Azure's `2023-11-16 18:17:03.9799600` (UTC): a recording's
  /// timestamp rules, with the Azure form (a space before the time, no offset) taken as UTC.
  private func timestamp(_ cell: UnsafeBufferPointer<UInt8>, line: Int) throws -> Date {
    let azure = cell.count >= 19 && cell[4] == UInt8(ascii: "-") && cell[10] == UInt8(ascii: " ")
    return try RecordedMetrics.parseTimestamp(cell, file: file, line: line, assumingUTC: azure)
  }

  private func amount(_ cell: UnsafeBufferPointer<UInt8>, column: String, line: Int) throws -> Double {
    let text = String(decoding: cell, as: UTF8.self)
    // Decimal digits, a point, an exponent and a sign only: `Double(_:)` would also read a hex
    // number, and stop at a NUL byte (reading `3\0600` as 3).
    let decimal = cell.allSatisfy {
      (48...57).contains($0) || $0 == 46 || $0 == 101 || $0 == 69 || $0 == 43 || $0 == 45
    }
    guard decimal, let value = Double(text), value.isFinite, value >= 0, value <= PolicyLimits.maxMagnitude
    else {
      throw TraceError(
        file: file, line: line,
        message: "'\(text.prefix(40))' in column \(column) is not a number of 0 or more")
    }
    return value
  }
}
