import Foundation

/// Where a live signal comes from: one source per signal, each with its own typed settings.
public enum SignalSource: Sendable, Equatable {
  case directory(DirectorySignalSettings)
  case command(CommandSignalSettings)
  case httpJSON(HTTPJSONSignalSettings)
  case prometheus(PrometheusSignalSettings)
  case nvml(NVMLSignalSettings)
  case redis(RedisSignalSettings)
}

/// One kind of signal source as the policy file writes it: its key under a signal, and how its
/// YAML form decodes and then validates into a `SignalSource`. Each kind lives in its own file
/// under `Config/Sources/`, with its settings and raw form; `all` is the one table of them.
struct SignalSourceKind: Sendable {
  typealias Validation = @Sendable (_ signal: RawScalar, _ validator: PolicyValidator) -> SignalSource?

  let key: String
  /// Decodes the source's mapping; the result validates it once the whole file is read.
  let read: @Sendable (any Decoder) throws -> Validation

  /// - Parameter validate: the source's `PolicyValidator` method, such as
  ///   `PolicyValidator.validateRedis`, which takes the decoded keys and the signal's name.
  init<Raw: Decodable & Sendable>(
    _ key: String,
    validate: @escaping @Sendable (PolicyValidator) -> (Raw, _ name: RawScalar) -> SignalSource?
  ) {
    self.key = key
    self.read = { decoder in
      let value = try Raw(from: decoder)
      return { signal, validator in validate(validator)(value, signal) }
    }
  }

  /// Every source a signal may name, with the validation of its keys. Adding a source adds its
  /// line here.
  static let all: [SignalSourceKind] = [
    SignalSourceKind("directory", validate: PolicyValidator.validateDirectory),
    SignalSourceKind("command", validate: PolicyValidator.validateCommand),
    SignalSourceKind("http_json", validate: PolicyValidator.validateHTTPJSON),
    SignalSourceKind("prometheus", validate: PolicyValidator.validatePrometheus),
    SignalSourceKind("nvml", validate: PolicyValidator.validateNVML),
    SignalSourceKind("redis", validate: PolicyValidator.validateRedis),
  ]

  static func named(_ key: String) -> SignalSourceKind? { all.first { $0.key == key } }
}

extension PolicyDefaults {
  public static let signalTimeout: TimeInterval = 5
}
