import CapstanCore
import CapstanReplay
import Foundation

/// Requests as they arrived, read as published: the Azure LLM inference CSV
/// (`TIMESTAMP,ContextTokens,GeneratedTokens`), the Mooncake / Dynamo JSON Lines (`timestamp` in
/// milliseconds from the start, `input_length`, `output_length`), or a generic CSV with
/// `timestamp,input_tokens,output_tokens` or `timestamp,work_seconds`.
public struct Trace: Sendable {
  public enum Kind: String, Sendable {
    /// Requests with input and output tokens: served at prefill and decode rates.
    case llm
    /// Jobs with a known service time on one slot.
    case jobs
  }

  public struct Request: Sendable, Equatable {
    /// Seconds from the start of the trace.
    public var arrival: Double
    public var inputTokens: Double
    public var outputTokens: Double
    /// Jobs: seconds on one slot.
    public var workSeconds: Double

    public init(arrival: Double, inputTokens: Double = 0, outputTokens: Double = 0, workSeconds: Double = 0) {
      self.arrival = arrival
      self.inputTokens = inputTokens
      self.outputTokens = outputTokens
      self.workSeconds = workSeconds
    }
  }

  public var kind: Kind
  /// The wall-clock time of the first request (the Mooncake format has none: 2024-01-01).
  public var start: Date
  /// In arrival order.
  public var requests: [Request]

  public init(kind: Kind, start: Date, requests: [Request]) {
    self.kind = kind
    self.start = start
    self.requests = requests
  }

  /// The same requests arriving `factor` times as often (1.5: half again the rate).
  public func scaled(rate factor: Double) -> Trace {
    var copy = self
    copy.requests = requests.map {
      var request = $0; request.arrival /= factor; return request
    }
    return copy
  }

  /// Repeated back to back until it spans `seconds`, each copy starting one mean gap after the
  /// last request of the one before.
  public func tiled(to seconds: Double) -> Trace {
    guard let last = requests.last?.arrival, last > 0, requests.count > 1 else { return self }
    let period = last + last / Double(requests.count - 1)
    var copy = self
    copy.requests = []
    var offset = 0.0
    while offset < seconds {
      for request in requests where offset + request.arrival < seconds {
        var shifted = request
        shifted.arrival += offset
        copy.requests.append(shifted)
      }
      offset += period
    }
    return copy
  }
}

extension Trace {
  /// A daily shape over a flat trace: each request is kept with a probability that follows the
  /// clock of its arrival, 1 at 12:00 and 1/`peakToTrough` at 00:00 (a cosine between), so the
  /// busiest hour carries `peakToTrough` times the quietest. Which requests go is fixed by their
  /// place in the trace, so the same trace gives the same result.
  public func diurnal(peakToTrough factor: Double) -> Trace {
    guard factor > 1 else { return self }
    var copy = self
    var generator = SplitMix64(seed: 0x5EED)
    copy.requests = requests.filter { request in
      let clock = (start.timeIntervalSince1970 + request.arrival).truncatingRemainder(dividingBy: 86_400)
      let shape = (1 - cos(2 * Double.pi * clock / 86_400)) / 2  // 0 at midnight, 1 at noon
      let keep = 1 / factor + (1 - 1 / factor) * shape
      return Double(generator.next() >> 11) / Double(1 << 53) < keep
    }
    return copy
  }
}

/// A trace's error, at its line, as a recording's.
public typealias TraceError = MetricsFileError

extension Trace {
  /// The most requests a trace may hold, so a mistaken file cannot take all memory.
  public static let maxRequests = 20_000_000

  public static func load(path: String) throws -> Trace {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TraceError(file: path, line: 0, message: "cannot read the trace file")
    }
    return try parse(String(decoding: data, as: UTF8.self), file: path)
  }

  /// Detects the format by its first line.
  public static func parse(_ text: String, file: String) throws -> Trace {
    var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
      .makeIterator()
    guard let (_, first) = lines.next() else {
      throw TraceError(file: file, line: 1, message: "empty trace")
    }
    let header = first.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\u{FEFF}", with: "")
    if header.hasPrefix("{") {
      return try parseMooncake(text, file: file)
    }
    let columns = header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let format: (kind: Kind, fields: [String])
    switch columns {
    case ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]: format = (.llm, columns)
    case ["timestamp", "input_tokens", "output_tokens"]: format = (.llm, columns)
    case ["timestamp", "work_seconds"]: format = (.jobs, columns)
    default:
      throw TraceError(
        file: file, line: 1,
        message:
          "unknown trace header '\(header.prefix(80))': expected TIMESTAMP,ContextTokens,GeneratedTokens (Azure), timestamp,input_tokens,output_tokens, timestamp,work_seconds, or Mooncake JSON Lines"
      )
    }
    var requests: [Request] = []
    var start: Date?
    var previous: Date?
    while let (index, line) = lines.next() {
      let number = index + 1
      if line.allSatisfy(\.isWhitespace) { continue }
      let cells = line.split(separator: ",", omittingEmptySubsequences: false)
      guard cells.count == format.fields.count else {
        throw TraceError(
          file: file, line: number, message: "\(cells.count) cells for \(format.fields.count) columns")
      }
      let time = try timestamp(String(cells[0]), file: file, line: number)
      if let previous, time < previous {
        throw TraceError(
          file: file, line: number,
          message: "this request arrives before the one on the line above: sort the trace by its timestamp")
      }
      previous = time
      let origin = start ?? time
      start = origin
      var values: [Double] = []
      for (name, cell) in zip(format.fields.dropFirst(), cells.dropFirst()) {
        values.append(try amount(cell, column: name, file: file, line: number))
      }
      let arrival = time.timeIntervalSince(origin)
      requests.append(
        format.kind == .llm
          ? Request(arrival: arrival, inputTokens: values[0], outputTokens: values[1])
          : Request(arrival: arrival, workSeconds: values[0]))
      guard requests.count <= maxRequests else {
        throw TraceError(
          file: file, line: number, message: "more than \(maxRequests) requests: split the trace")
      }
    }
    guard let start else { throw TraceError(file: file, line: 2, message: "the trace has no requests") }
    return Trace(kind: format.kind, start: start, requests: requests)
  }

  private static func parseMooncake(_ text: String, file: String) throws -> Trace {
    struct Line: Decodable {
      var timestamp: Double
      var inputLength: Double
      var outputLength: Double
      enum CodingKeys: String, CodingKey {
        case timestamp
        case inputLength = "input_length"
        case outputLength = "output_length"
      }
    }
    var requests: [Request] = []
    let decoder = JSONDecoder()
    for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
      .enumerated()
    {
      if line.allSatisfy(\.isWhitespace) { continue }
      let number = index + 1
      guard let parsed = try? decoder.decode(Line.self, from: Data(line.utf8)) else {
        throw TraceError(
          file: file, line: number,
          message:
            "not a Mooncake request: expected {\"timestamp\": MS, \"input_length\": N, \"output_length\": N}")
      }
      for (name, value) in [
        ("timestamp", parsed.timestamp), ("input_length", parsed.inputLength),
        ("output_length", parsed.outputLength),
      ] where !value.isFinite || value < 0 || value > PolicyLimits.maxMagnitude {
        throw TraceError(
          file: file, line: number, message: "\(name) is \(value): write a number of 0 or more")
      }
      let arrival = parsed.timestamp / 1000
      if let last = requests.last, arrival < last.arrival {
        throw TraceError(
          file: file, line: number,
          message: "this request arrives before the one on the line above: sort the trace by its timestamp")
      }
      requests.append(
        Request(arrival: arrival, inputTokens: parsed.inputLength, outputTokens: parsed.outputLength))
      guard requests.count <= maxRequests else {
        throw TraceError(
          file: file, line: number, message: "more than \(maxRequests) requests: split the trace")
      }
    }
    guard !requests.isEmpty else {
      throw TraceError(file: file, line: 1, message: "the trace has no requests")
    }
    // The format counts from the start; a fixed origin keeps runs reproducible.
    return Trace(kind: .llm, start: Date(timeIntervalSince1970: 1_704_067_200), requests: requests)
  }

  /// RFC 3339, Unix seconds, or Azure's `2023-11-16 18:17:03.9799600` (UTC).
  private static func timestamp(_ text: String, file: String, line: Int) throws -> Date {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let azure = trimmed.count >= 19 && trimmed.dropFirst(10).first == " " && !trimmed.hasSuffix("Z")
    if let date = RecordedMetrics.timestamp(azure ? trimmed + "Z" : trimmed),
      date.timeIntervalSince1970.isFinite, date.timeIntervalSince1970 >= 0,
      date.timeIntervalSince1970 <= 7_258_118_400
    {
      return date
    }
    throw TraceError(
      file: file, line: line,
      message:
        "'\(trimmed.prefix(40))' is not a time between 1970 and 2200: write RFC 3339, Unix seconds, or 2023-11-16 18:17:03.98"
    )
  }

  private static func amount(_ cell: Substring, column: String, file: String, line: Int) throws -> Double {
    let text = cell.trimmingCharacters(in: .whitespaces)
    guard let value = Double(text), value.isFinite, value >= 0, value <= PolicyLimits.maxMagnitude else {
      throw TraceError(
        file: file, line: line,
        message: "'\(text.prefix(40))' in column \(column) is not a number of 0 or more")
    }
    return value
  }
}
