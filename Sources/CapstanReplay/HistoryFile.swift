import CapstanCore
import Foundation

/// A predictive floor's history from a recorded-metrics file: one column's values in a window.
public enum HistoryFile {
  /// The values of `signal` at times in [from, to), read a row at a time; rows without it are
  /// skipped. A file that cannot be read, or a bad row, is an error at its line.
  public static func read(path: String, signal: String, from: Date, to: Date) throws -> [(
    time: Date, value: Double
  )] {
    var file = try RecordedMetricsFile(path: path)
    var samples: [(time: Date, value: Double)] = []
    while let sample = try file.next() {
      guard sample.time < to else { break }
      guard let value = sample.values[signal] else { continue }
      if sample.time >= from { samples.append((sample.time, value)) }
    }
    return samples
  }

  /// The file a policy names, relative to the policy file's folder.
  public static func path(_ settings: PredictiveSettings, baseDirectory: URL) -> String? {
    guard case .file(let path) = settings.history else { return nil }
    return baseDirectory.resolving(path).path
  }
}
