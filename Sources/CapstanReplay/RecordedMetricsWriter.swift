import CapstanCore
import Foundation

/// Writes the CSV form that `RecordedMetrics` reads: a header `timestamp,<metric>,...`, then one
/// row per sample, an empty cell for a missing value. Rows are appended and flushed one by one,
/// so an interrupted recording keeps every row it took.
public final class RecordedMetricsWriter {
  public let columns: [String]
  private let handle: FileHandle

  public struct Mismatch: Error, CustomStringConvertible {
    public var description: String
  }

  /// Appends to an existing recording whose header has the same columns, or starts a new file.
  public init(path: String, columns: [String]) throws {
    self.columns = columns
    let header = (["timestamp"] + columns).joined(separator: ",")
    if let existing = FileManager.default.contents(atPath: path), !existing.isEmpty {
      let firstLine = String(decoding: existing.prefix { $0 != 10 }, as: UTF8.self)
      guard firstLine == header else {
        throw Mismatch(
          description:
            "\(path) already holds a recording with the columns '\(firstLine)', not '\(header)': give another --out"
        )
      }
      handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
      try handle.seekToEnd()
      if existing.last != 10 { try handle.write(contentsOf: Data("\n".utf8)) }
    } else {
      guard FileManager.default.createFile(atPath: path, contents: Data((header + "\n").utf8)) else {
        throw Mismatch(description: "cannot create \(path)")
      }
      handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
      try handle.seekToEnd()
    }
  }

  public func append(time: Date, values: [String: Double]) throws {
    // Shortest round-trip text: a recording keeps every digit the source gave.
    let cells = columns.map { column in
      values[column].map { $0 == $0.rounded() && abs($0) < 1e15 ? String(Int64($0)) : "\($0)" } ?? ""
    }
    try handle.write(
      contentsOf: Data(([RFC3339.string(from: time)] + cells).joined(separator: ",").appending("\n").utf8))
  }

  public func close() { try? handle.close() }
}
