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

  init<Raw: Decodable & Sendable>(
    _ key: String, _ raw: Raw.Type,
    validate: @escaping @Sendable (Raw, _ signal: RawScalar, PolicyValidator) -> SignalSource?
  ) {
    self.key = key
    self.read = { decoder in
      let value = try Raw(from: decoder)
      return { signal, validator in validate(value, signal, validator) }
    }
  }

  /// Every source a signal may name. Adding a source adds its line here.
  static let all: [SignalSourceKind] = [.directory, .command, .httpJSON, .prometheus, .nvml, .redis]

  static func named(_ key: String) -> SignalSourceKind? { all.first { $0.key == key } }
}

extension PolicyDefaults {
  public static let signalTimeout: TimeInterval = 5
}
