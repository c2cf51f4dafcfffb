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

  /// `FILE:LINE: error: …`; an error about the whole file (it cannot be read) has no line.
  public var description: String {
    line > 0 ? "\(file):\(line): error: \(message)" : "\(file): error: \(message)"
  }
}

extension RecordedMetrics {
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
