import Foundation

/// A variant whose capacity is learned on its process's SLO from its own signals, read over its
/// replicas alone, rather than held at the declared value (which stays the starting point).
/// Set as `processes.NAME.variants.VARIANT.learn`; see docs/variants.md.
public struct VariantLearning: Sendable, Equatable {
  /// Requests a second this variant's replicas take.
  public var load: String
  /// Requests running on its replicas now.
  public var running: String
  /// Per objective of the process's SLO, in its order, the signal that measures that latency
  /// over this variant's replicas; nil for a queue wait, which is the process's, not a kind
  /// of replica's.
  public var measured: [String?]

  /// Every signal it reads, in a stable order.
  public var signalNames: [String] {
    var names = [load, running]
    for case let name? in measured where !names.contains(name) { names.append(name) }
    return names
  }
}

struct RawVariantLearning: Decodable {
  var load, running: RawScalar?
  var measured: RawMap<RawScalar>?
  var location: FileLocation

  enum CodingKeys: String, CodingKey, CaseIterable { case load, running, measured }

  init(from decoder: any Decoder) throws {
    location = (decoder as? YAMLNodeDecoder)?.location ?? FileLocation(file: "", line: 1, column: 1)
    let container = try decoder.container(keyedBy: CodingKeys.self)
    load = try container.decodeIfPresent(RawScalar.self, forKey: .load)
    running = try container.decodeIfPresent(RawScalar.self, forKey: .running)
    measured = try container.decodeIfPresent(RawMap<RawScalar>.self, forKey: .measured)
  }
}

extension PolicyValidator {
  /// A variant's `learn:` block, against its process's SLO: a load, a running count, and a
  /// measured signal for every latency the SLO bounds other than a queue wait.
  func validateLearning(
    _ raw: RawVariantLearning, variant: RawScalar, process: ScalingTarget, member: String,
    references: inout SignalReferences
  ) -> VariantLearning? {
    let section = "variants.\(variant.text).learn"
    guard let slo = process.slo else {
      sink.error(
        raw.location,
        "\(section) learns the variant's capacity against its process's SLO, and process '\(process.name)' has no scaling.slo: declare capacity alone, or size the process on an SLO"
      )
      return nil
    }
    var complete = true
    for (key, value) in [("load", raw.load), ("running", raw.running)] where value == nil {
      sink.error(
        raw.location,
        "\(section) needs \(key): the signal of the requests \(key == "load" ? "arriving a second at" : "running on") this variant's replicas alone"
      )
      complete = false
    }
    let latencies = slo.objectives.map(\.latency).filter { $0 != .queueWait }
    var given: [String: RawScalar] = [:]
    for (name, signal) in raw.measured?.entries ?? [] {
      guard let latency = SLOScaling.Latency(rawValue: name.text), latencies.contains(latency) else {
        let known = latencies.map(\.rawValue)
        sink.error(
          name.location,
          "\(section).measured names '\(name.text)', which process '\(process.name)''s SLO does not bound here: name \(known.joined(separator: ", "))"
        )
        complete = false
        continue
      }
      given[name.text] = signal
    }
    for latency in latencies where given[latency.rawValue] == nil {
      sink.error(
        raw.location,
        "\(section).measured needs \(latency.rawValue): the signal of the \(latency.rawValue) percentile the SLO bounds, over this variant's replicas alone"
      )
      complete = false
    }
    guard complete, let load = raw.load, let running = raw.running else { return nil }
    for signal in [load, running] + Array(given.values) {
      references.note(signal, perReplicaOf: nil, usedBy: member)
    }
    return VariantLearning(
      load: load.text, running: running.text,
      measured: slo.objectives.map { $0.latency == .queueWait ? nil : given[$0.latency.rawValue]?.text })
  }

  /// Where variants learn, the first variant in the file sets the unit: its declared capacity
  /// stays, and the others' are learned against it, so it must learn too.
  func checkUnitVariant(_ members: [ScalingTarget], raw: RawMap<RawVariant>, process: String) -> String? {
    guard let unit = members.first, members.contains(where: { $0.variant?.learning != nil }) else {
      return nil
    }
    guard unit.variant?.learning != nil else {
      for (name, variant) in raw.entries where variant.learn != nil && name.text != unit.variant?.variant {
        sink.error(
          variant.learn?.location ?? name.location,
          "variant '\(name.text)' learns its capacity against '\(unit.variant?.variant ?? unit.name)', the first variant of process '\(process)', whose declared capacity sets the unit: give '\(unit.variant?.variant ?? unit.name)' a learn: block too, with its own signals"
        )
      }
      return nil
    }
    return unit.name
  }
}
