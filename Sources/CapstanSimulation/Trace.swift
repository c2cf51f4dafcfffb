import CapstanCore
import CapstanReplay
import Foundation

/// Requests as they arrived, read as published: the Azure LLM inference CSV
/// (`TIMESTAMP,ContextTokens,GeneratedTokens`), the Mooncake / Dynamo JSON Lines (`timestamp` in
/// milliseconds from the start, `input_length`, `output_length`), or a generic CSV with
/// `timestamp,input_tokens,output_tokens` or `timestamp,work_seconds`.
///
/// A trace loaded from a file is streamed: `load` reads it once to check every line, and each
/// run reads it again through a fixed buffer, so a trace of any length simulates in the same
/// memory. Rate, tiling and the daily shape are stages applied as the requests stream by.
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
    /// The line of the file it was read from (0 for one made in memory), for an error about it.
    /// Not part of a request's identity.
    public var line = 0

    public init(arrival: Double, inputTokens: Double = 0, outputTokens: Double = 0, workSeconds: Double = 0) {
      self.arrival = arrival
      self.inputTokens = inputTokens
      self.outputTokens = outputTokens
      self.workSeconds = workSeconds
    }

    public static func == (left: Request, right: Request) -> Bool {
      (left.arrival, left.inputTokens, left.outputTokens, left.workSeconds)
        == (right.arrival, right.inputTokens, right.outputTokens, right.workSeconds)
    }
  }

  enum Origin: Sendable {
    case requests([Request])
    /// A file `load` has checked line by line.
    case file(String)
    /// A pipe or another file that cannot be read twice, read once into memory by `load`.
    case text(name: String, contents: String)
  }

  enum Stage: Sendable {
    case rate(Double)
    case tile(seconds: Double, period: Double)
    case diurnal(Double)
  }

  public var kind: Kind
  /// The wall-clock time of the first request (the Mooncake format has none: 2024-01-01).
  public var start: Date
  var origin: Origin
  /// Applied in order to the origin's requests.
  var stages: [Stage] = []

  public init(kind: Kind, start: Date, requests: [Request]) {
    self.kind = kind
    self.start = start
    self.origin = .requests(requests)
  }

  /// The requests in arrival order, one at a time.
  public struct Stream {
    fileprivate var produce: () throws -> Request?
    public mutating func next() throws -> Request? { try produce() }
  }

  public func stream() throws -> Stream { Stream(produce: try producer(stages[...])) }

  /// Every request, in memory: for a trace read many times over (`tune`), or a test.
  public func collect() throws -> [Request] {
    var stream = try stream()
    var requests: [Request] = []
    while let request = try stream.next() { requests.append(request) }
    return requests
  }

  /// The same trace held in memory, so reading it again costs no parsing.
  public func inMemory() throws -> Trace {
    var copy = self
    copy.origin = .requests(try collect())
    copy.stages = []
    return copy
  }

  private func producer(_ stages: ArraySlice<Stage>) throws -> () throws -> Request? {
    guard let stage = stages.last else {
      switch origin {
      case .requests(let requests):
        var index = 0
        return {
          guard index < requests.count else { return nil }
          index += 1
          return requests[index - 1]
        }
      case .file, .text:
        let reader = try openReader()
        let path = name
        var parser: TraceLineParser?
        return {
          while true {
            if parser == nil {
              guard let header = try reader.nextLine() else { return nil }
              let format = try TraceLineParser(header: header, file: path)
              parser = format
              if format.firstLineIsRequest, let request = try parser?.parse(Substring(header), line: 1) {
                return request
              }
              continue
            }
            let read = try reader.next { line, number in try parser?.parse(line, line: number) }
            guard let read else { return nil }
            if let request = read { return request }
          }
        }
      }
    }
    let inner = stages.dropLast()
    switch stage {
    case .rate(let factor):
      let next = try producer(inner)
      return {
        guard var request = try next() else { return nil }
        request.arrival /= factor
        return request
      }
    case .tile(let seconds, let period):
      var copy = try producer(inner)
      var offset = 0.0
      return {
        while offset < seconds {
          if let request = try copy(), offset + request.arrival < seconds {
            var shifted = request
            shifted.arrival += offset
            return shifted
          }
          // Arrivals are in order: the first past the end ends this copy.
          offset += period
          if offset < seconds { copy = try producer(inner) }
        }
        return nil
      }
    case .diurnal(let factor):
      let next = try producer(inner)
      var generator = SplitMix64(seed: 0x5EED)
      let origin = start.timeIntervalSince1970
      return {
        while let request = try next() {
          let clock = (origin + request.arrival).truncatingRemainder(dividingBy: 86_400)
          let shape = (1 - cos(2 * Double.pi * clock / 86_400)) / 2  // 0 at midnight, 1 at noon
          let keep = 1 / factor + (1 - 1 / factor) * shape
          if Double(generator.next() >> 11) / Double(1 << 53) < keep { return request }
        }
        return nil
      }
    }
  }

  /// The file the trace was read from, for errors.
  public var name: String {
    switch origin {
    case .requests: "trace"
    case .file(let path): path
    case .text(let name, _): name
    }
  }

  private func openReader() throws -> LineReader {
    switch origin {
    case .text(let name, let contents): try LineReader(text: contents, name: name)
    case .file(let path): try LineReader(path: path)
    case .requests: try LineReader(text: "", name: "trace")
    }
  }

  /// The same requests arriving `factor` times as often (1.5: half again the rate).
  public func scaled(rate factor: Double) -> Trace {
    guard factor != 1 else { return self }
    var copy = self
    copy.stages.append(.rate(factor))
    return copy
  }

  /// Repeated back to back until it spans `seconds`, each copy starting one mean gap after the
  /// last request of the one before. Reads the trace once to find its span.
  public func tiled(to seconds: Double) throws -> Trace {
    var stream = try stream()
    var count = 0
    var last = 0.0
    while let request = try stream.next() {
      count += 1
      last = request.arrival
    }
    guard last > 0, count > 1 else { return self }
    let period = last + last / Double(count - 1)
    let copies = (seconds / period).rounded(.up)
    guard Double(count) * copies <= Double(Self.maxRequests) else {
      throw ShapeError(
        message:
          "--tile \(DurationText.of(seconds)) repeats the \(count) requests of \(name) \(Int(saturating: copies)) times, more than \(Self.maxRequests) requests: tile it to less"
      )
    }
    var copy = self
    copy.stages.append(.tile(seconds: seconds, period: period))
    return copy
  }

  /// A shape asked of a trace (`--tile`) that it cannot take.
  public struct ShapeError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
  }

  /// A daily shape over a flat trace: each request is kept with a probability that follows the
  /// clock of its arrival, 1 at 12:00 and 1/`peakToTrough` at 00:00 (a cosine between), so the
  /// busiest hour carries `peakToTrough` times the quietest. Which requests go is fixed by their
  /// place in the trace, so the same trace gives the same result.
  public func diurnal(peakToTrough factor: Double) -> Trace {
    guard factor > 1 else { return self }
    var copy = self
    copy.stages.append(.diurnal(factor))
    return copy
  }
}

/// A trace's error, at its line, as a recording's.
public typealias TraceError = MetricsFileError

extension Trace {
  /// The most requests a trace file may hold, so a mistaken file cannot run for hours.
  public static let maxRequests = 20_000_000

  /// The largest trace read into memory from a pipe or another file that is not regular.
  public static let maxPipedBytes = 1 << 30

  /// Reads the file once, checking every line, and returns a trace that streams it. A pipe
  /// (`--trace <(…)`) or another file that cannot be read twice is read once into memory.
  public static func load(path: String) throws -> Trace {
    var attributes = stat()
    guard stat(path, &attributes) == 0 else {
      throw TraceError(
        file: path, line: 0, message: "cannot read the file: \(String(cString: strerror(errno)))")
    }
    var piped: String?
    if (attributes.st_mode & S_IFMT) != S_IFREG {
      guard let handle = FileHandle(forReadingAtPath: path) else {
        throw TraceError(
          file: path, line: 0, message: "cannot read the file: \(String(cString: strerror(errno)))")
      }
      defer { try? handle.close() }
      let data = (try? handle.read(upToCount: maxPipedBytes + 1)) ?? nil
      guard (data?.count ?? 0) <= maxPipedBytes else {
        throw TraceError(
          file: path, line: 0,
          message: "more than 1 GiB through a pipe: save the trace to a file and give its path")
      }
      piped = String(decoding: data ?? Data(), as: UTF8.self)
    }
    var trace = Trace(kind: .llm, start: Date(timeIntervalSince1970: 0), requests: [])
    trace.origin = piped.map { .text(name: path, contents: $0) } ?? .file(path)
    let reader = try trace.openReader()
    guard let header = try reader.nextLine() else {
      throw TraceError(file: path, line: 1, message: "empty trace")
    }
    var parser = try TraceLineParser(header: header, file: path)
    var count = 0
    if parser.firstLineIsRequest, try parser.parse(Substring(header), line: 1) != nil { count += 1 }
    while let read = try reader.next({ line, number in try parser.parse(line, line: number) }) {
      if read != nil { count += 1 }
      guard count <= maxRequests else {
        throw TraceError(
          file: path, line: reader.lineNumber, message: "more than \(maxRequests) requests: split the trace")
      }
    }
    guard count > 0 else {
      throw TraceError(
        file: path, line: parser.firstLineIsRequest ? 1 : 2, message: "the trace has no requests")
    }
    trace.kind = parser.kind
    trace.start = parser.start
    return trace
  }

  /// The most ticks one simulation runs, as for a replay: a trace whose requests span more (a
  /// mistyped year, a rate far too low) is refused at the line of the first request past it.
  public static let maxTicks = 10_000_000

  /// Reads the trace as a run will (rate, tiling and daily shape applied) and refuses one that
  /// would run past `maxTicks` ticks of `interval`, or hold more than `maxRequests` requests
  /// once tiled, at the line of the request that crosses the bound.
  public func checkBounds(interval: TimeInterval) throws {
    var stream = try stream()
    var count = 0
    let limit = Double(Self.maxTicks) * interval
    while let request = try stream.next() {
      count += 1
      guard count <= Self.maxRequests else {
        throw TraceError(
          file: name, line: request.line,
          message:
            "the trace as shaped (--rate, --tile) holds more than \(Self.maxRequests) requests: shorten --tile or lower --rate"
        )
      }
      guard request.arrival <= limit else {
        throw TraceError(
          file: name, line: request.line,
          message:
            "this request arrives \(DurationText.of(request.arrival)) after the first, past the \(Self.maxTicks) ticks of \(DurationText.of(interval)) a simulation runs: is its timestamp a typo, or --rate too low?"
        )
      }
    }
  }

  /// Reads a trace held in memory, by the same rules as a file.
  public static func parse(_ text: String, file: String) throws -> Trace {
    var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).makeIterator()
    guard let header = lines.next() else { throw TraceError(file: file, line: 1, message: "empty trace") }
    var parser = try TraceLineParser(header: String(header), file: file)
    var requests: [Request] = []
    if parser.firstLineIsRequest, let request = try parser.parse(header, line: 1) { requests.append(request) }
    var number = 1
    while let line = lines.next() {
      number += 1
      if let request = try parser.parse(line, line: number) { requests.append(request) }
      guard requests.count <= maxRequests else {
        throw TraceError(
          file: file, line: number, message: "more than \(maxRequests) requests: split the trace")
      }
    }
    guard !requests.isEmpty else {
      throw TraceError(
        file: file, line: parser.firstLineIsRequest ? 1 : 2, message: "the trace has no requests")
    }
    return Trace(kind: parser.kind, start: parser.start, requests: requests)
  }
}

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

  private struct MooncakeLine: Decodable {
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
    guard let parsed = try? decoder.decode(MooncakeLine.self, from: Data(line)) else {
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
