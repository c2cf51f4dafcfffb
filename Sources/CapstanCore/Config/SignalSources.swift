import Foundation

/// Where a live signal comes from: one source per signal, each with its own typed settings.
public enum SignalSource: Sendable, Equatable {
  case directory(DirectorySignalSettings)
  case command(CommandSignalSettings)
  case httpJSON(HTTPJSONSignalSettings)
  case prometheus(PrometheusSignalSettings)
  case nvml(NVMLSignalSettings)
  case redis(RedisSignalSettings)

  /// The key that names the source in the policy file.
  public var kind: String {
    switch self {
    case .directory: return "directory"
    case .command: return "command"
    case .httpJSON: return "http_json"
    case .prometheus: return "prometheus"
    case .nvml: return "nvml"
    case .redis: return "redis"
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

/// A number at a JSON pointer in the response to an HTTP GET.
public struct HTTPJSONSignalSettings: Sendable, Equatable, Codable {
  public var url: String
  /// RFC 6901, such as `/data/queue/depth` or `/items/0/value`; `""` is the whole document.
  public var pointer: String
  public var headers: [String: String]
  /// The name of an environment variable holding a bearer token, so no secret sits in the file.
  public var bearerTokenEnv: String?
  public var caFile: String?
  /// TLS is verified unless this is set.
  public var insecureSkipTLSVerify: Bool
  public var timeout: TimeInterval

  public init(
    url: String, pointer: String, headers: [String: String] = [:], bearerTokenEnv: String? = nil,
    caFile: String? = nil, insecureSkipTLSVerify: Bool = false, timeout: TimeInterval = 5
  ) {
    self.url = url
    self.pointer = pointer
    self.headers = headers
    self.bearerTokenEnv = bearerTokenEnv
    self.caFile = caFile
    self.insecureSkipTLSVerify = insecureSkipTLSVerify
    self.timeout = timeout
  }
}

/// An instant query against Prometheus's HTTP API (or anything that speaks it: Thanos, Mimir,
/// VictoriaMetrics).
public struct PrometheusSignalSettings: Sendable, Equatable, Codable {
  public enum OnEmpty: String, Sendable, Codable, CaseIterable {
    /// No series: the signal is missing at that tick (the safe default: no scale-down on it).
    case missing
    /// No series: the value is 0, for queries where no series means nothing to do.
    case zero
  }

  /// The server's base URL, such as http://prometheus:9090.
  public var url: String
  /// PromQL that yields a scalar or exactly one series.
  public var query: String
  public var onEmpty: OnEmpty
  public var bearerTokenEnv: String?
  public var caFile: String?
  public var timeout: TimeInterval

  public init(
    url: String, query: String, onEmpty: OnEmpty = .missing, bearerTokenEnv: String? = nil,
    caFile: String? = nil,
    timeout: TimeInterval = 5
  ) {
    self.url = url
    self.query = query
    self.onEmpty = onEmpty
    self.bearerTokenEnv = bearerTokenEnv
    self.caFile = caFile
    self.timeout = timeout
  }
}

/// GPU utilization or memory read from the NVIDIA driver's management library, loaded at run
/// time so that Capstan starts on machines without a GPU.
public struct NVMLSignalSettings: Sendable, Equatable, Codable {
  public enum Measure: String, Sendable, Codable, CaseIterable {
    /// Percent of time a kernel ran over the driver's sample period, 0–100.
    case utilization
    /// Used memory as a percent of total, 0–100.
    case memoryUsedPercent = "memory_used_percent"
  }

  public enum Aggregate: String, Sendable, Codable, CaseIterable { case mean, max }

  /// nil for every GPU; otherwise indexes ("0") or UUIDs ("GPU-...").
  public var devices: [String]?
  public var measure: Measure
  public var aggregate: Aggregate
  /// The library to load instead of libnvidia-ml.so.1.
  public var library: String?
  public var timeout: TimeInterval

  public init(
    devices: [String]? = nil, measure: Measure = .utilization, aggregate: Aggregate = .mean,
    library: String? = nil,
    timeout: TimeInterval = 5
  ) {
    self.devices = devices
    self.measure = measure
    self.aggregate = aggregate
    self.library = library
    self.timeout = timeout
  }
}

/// A queue held in Redis: a list (Sidekiq, RQ), a stream with or without a consumer group, or a
/// sorted set scored by enqueue time.
public struct RedisSignalSettings: Sendable, Equatable, Codable {
  public enum Structure: Sendable, Equatable, Codable {
    case list(key: String)
    case stream(key: String, group: String?)
    case sortedSet(key: String)
  }

  public enum Measure: String, Sendable, Codable, CaseIterable {
    /// Entries waiting: LLEN, ZCARD, XLEN, or a group's undelivered entries.
    case depth
    /// A group's entries delivered but not acknowledged.
    case pending
    /// Seconds since the oldest waiting entry was enqueued; 0 when none waits.
    case oldestAge = "oldest_age"
  }

  public enum ListEnd: String, Sendable, Codable, CaseIterable {
    case left, right
  }

  /// redis://[user:password@]host:port/db
  public var url: String
  /// An environment variable holding the password, so no secret sits in the file.
  public var passwordEnv: String?
  public var structure: Structure
  public var measure: Measure
  /// The end of a list consumers pop from, where the oldest entry is (LPUSH + BRPOP: right).
  public var popEnd: ListEnd
  /// The JSON field of a list entry holding its enqueue time, in seconds or milliseconds.
  public var timestampField: String
  public var timeout: TimeInterval

  public init(
    url: String, passwordEnv: String? = nil, structure: Structure, measure: Measure = .depth,
    popEnd: ListEnd = .right, timestampField: String = "enqueued_at", timeout: TimeInterval = 2
  ) {
    self.url = url
    self.passwordEnv = passwordEnv
    self.structure = structure
    self.measure = measure
    self.popEnd = popEnd
    self.timestampField = timestampField
    self.timeout = timeout
  }
}

extension PolicyDefaults {
  public static let signalTimeout: TimeInterval = 5
}
