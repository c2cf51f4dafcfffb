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

  func openReader() throws -> LineReader {
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
    var first: Double?
    var last = 0.0
    while let request = try stream.next() {
      count += 1
      first = first ?? request.arrival
      last = request.arrival
    }
    // A copy spans the requests, from the first to the last, and one mean gap: a trace whose
    // first request comes late (a slice of a longer trace) repeats its requests, not its lead.
    let span = last - (first ?? 0)
    guard span > 0, count > 1 else {
      // One instant has no gap to repeat it by: a copy would span nothing.
      throw ShapeError(
        message:
          "--tile needs requests at two times at least, and every request of \(name) arrives at the same time: drop --tile, or give a longer trace"
      )
    }
    let period = span + span / Double(count - 1)
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
