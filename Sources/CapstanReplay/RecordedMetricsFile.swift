import CapstanCore
import Foundation

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

  /// A recording's two formats.
  public enum Format: Sendable {
    case csv
    case jsonLines

    /// JSON Lines for `.jsonl` and `.ndjson` names, CSV for any other.
    public init(path: String) {
      self = path.hasSuffix(".jsonl") || path.hasSuffix(".ndjson") ? .jsonLines : .csv
    }
  }

  /// Opens the file and reads its header: CSV, or JSON Lines for `.jsonl` and `.ndjson` names.
  public init(path: String) throws {
    try self.init(LineReader(path: path), format: Format(path: path))
  }

  /// Reads a recording held in memory as if it were the file `name`.
  public init(text: String, name: String, format: Format) throws {
    try self.init(LineReader(text: text, name: name), format: format)
  }

  private init(_ reader: LineReader, format: Format) throws {
    self.reader = reader
    switch format {
    case .jsonLines: jsonLines = JSONLinesRowParser(file: reader.path)
    case .csv: csv = try CSVRowParser(header: try reader.nextLine().map { Substring($0) }, file: reader.path)
    }
  }

  /// The columns seen so far without `timestamp`: a CSV file's header, or every key a JSON Lines
  /// file's objects have had.
  public var columns: [String] { csv?.columns ?? jsonLines?.columns ?? [] }

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

extension RecordedMetrics {
  /// A CSV recording held in memory, read by the same code as a file.
  public static func parseCSV(_ text: String, file: String) throws -> RecordedMetrics {
    try parse(RecordedMetricsFile(text: text, name: file, format: .csv))
  }

  /// A JSON Lines recording held in memory, read by the same code as a file.
  public static func parseJSONLines(_ text: String, file: String) throws -> RecordedMetrics {
    try parse(RecordedMetricsFile(text: text, name: file, format: .jsonLines))
  }

  private static func parse(_ file: consuming RecordedMetricsFile) throws -> RecordedMetrics {
    var file = file
    var samples: [Sample] = []
    while let sample = try file.next() { samples.append(sample) }
    return RecordedMetrics(columns: file.columns, samples: samples)
  }
}
