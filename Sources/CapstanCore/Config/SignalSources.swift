import Foundation

/// Where a live signal comes from: one source per signal, each with its own typed settings.
public enum SignalSource: Sendable, Equatable {
  case directory(DirectorySignalSettings)
  case command(CommandSignalSettings)

  /// The key that names the source in the policy file.
  public var kind: String {
    switch self {
    case .directory: return "directory"
    case .command: return "command"
    }
  }

  public var timeout: TimeInterval {
    switch self {
    case .directory(let settings): return settings.timeout
    case .command(let settings): return settings.timeout
    }
  }
}

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
  public var glob: String?
  public var timeout: TimeInterval

  public init(path: String, measure: Measure, glob: String? = nil, timeout: TimeInterval = 5) {
    self.path = path
    self.measure = measure
    self.glob = glob
    self.timeout = timeout
  }
}

/// A program whose standard output is one number. Run without a shell.
public struct CommandSignalSettings: Sendable, Equatable, Codable {
  public var argv: [String]
  public var timeout: TimeInterval

  public init(argv: [String], timeout: TimeInterval = 5) {
    self.argv = argv
    self.timeout = timeout
  }
}

extension PolicyDefaults {
  public static let signalTimeout: TimeInterval = 5
}
