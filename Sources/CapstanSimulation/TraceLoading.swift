import CapstanCore
import CapstanReplay
import Foundation

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
