import Foundation

// The `nvml` signal source: nvidia gpus through nvml. Its settings, its YAML form and its
// validation; the reader is in CapstanSignals. Registered in `SignalSourceKind.all`.

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
  public var devices: [String]? = nil
  public var measure: Measure = .utilization
  public var aggregate: Aggregate = .mean
  /// The library to load instead of libnvidia-ml.so.1.
  public var library: String? = nil
  public var timeout: TimeInterval = 5

}

struct RawNVMLSource: Decodable {
  /// `all`, or a list such as `[0, 1, GPU-...]`.
  var devices: RawOneOrList<RawScalar>?
  var measure, aggregate, library, timeout: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable { case devices, measure, aggregate, library, timeout }
}

extension PolicyValidator {
  func validateNVML(_ nvml: RawNVMLSource, name: RawScalar) -> SignalSource? {
    var devices: [String]?
    if let rawDevices = nvml.devices {
      if !rawDevices.isList, let scalar = rawDevices.items.first {
        guard scalar.text == "all" else {
          sink.error(
            scalar.location,
            "devices is '\(scalar.text)': write all, or a list of indexes and UUIDs such as [0, 1]")
          return nil
        }
      } else if rawDevices.items.isEmpty {
        sink.error(
          rawDevices.location, "devices is an empty list: write all, or the GPUs to read such as [0, 1]")
        return nil
      } else {
        for item in rawDevices.items
        where Int(item.text) == nil && !item.text.hasPrefix("GPU-") && !item.text.hasPrefix("MIG-") {
          sink.error(
            item.location, "device '\(item.text)' is neither an index nor a UUID (GPU-... or MIG-...)")
        }
        devices = rawDevices.items.map(\.text)
      }
    }
    guard let measure = choice(nvml.measure, "measure", default: NVMLSignalSettings.Measure.utilization),
      let aggregate = choice(nvml.aggregate, "aggregate", default: NVMLSignalSettings.Aggregate.mean)
    else { return nil }
    return .nvml(
      NVMLSignalSettings(
        devices: devices, measure: measure, aggregate: aggregate, library: nvml.library?.text,
        timeout: nvml.timeout.flatMap { timeout($0) } ?? PolicyDefaults.signalTimeout))
  }
}
