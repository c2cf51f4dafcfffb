import Foundation

// The `directory` signal source: a spool directory. Its settings, its YAML form and its
// validation; the reader is in CapstanSignals. Registered in `SignalSourceKind.all`.

/// A spool directory as a queue: each entry is a message.
public struct DirectorySignalSettings: Sendable, Equatable, Codable {
  public enum Measure: String, Sendable, Codable, CaseIterable {
    /// The number of entries.
    case depth
    /// The age in seconds of the oldest entry, by modification time; 0 when empty.
    case oldestAge = "oldest_age"
  }

  /// Relative paths are taken from the policy file's folder.
  public var path: String
  public var measure: Measure
  /// Only entries whose names match (fnmatch), such as `*.json`; hidden entries never count.
  public var glob: String? = nil
  public var timeout: TimeInterval = 5

}

struct RawDirectorySource: Decodable {
  var path, measure, glob, timeout: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable { case path, measure, glob, timeout }
}

extension PolicyValidator {
  func validateDirectory(_ directory: RawDirectorySource, name: RawScalar) -> SignalSource? {
    guard let measure = choice(directory.measure, "measure", default: DirectorySignalSettings.Measure.depth)
    else {
      return nil
    }
    guard let path = directory.path, !path.text.isEmpty else {
      sink.error(
        name.location,
        "signal '\(name.text)' reads a directory but gives no path: add path: /var/spool/NAME")
      return nil
    }
    return .directory(
      DirectorySignalSettings(
        path: path.text, measure: measure, glob: directory.glob?.text,
        timeout: directory.timeout.flatMap { timeout($0) } ?? PolicyDefaults.signalTimeout))
  }
}
