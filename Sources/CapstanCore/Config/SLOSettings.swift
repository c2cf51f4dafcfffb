import Foundation

/// A process scaled on its service-level objectives rather than on a hand-set target: the
/// latencies its users are promised, the signals that measure them, and the signals that carry
/// its load. Set as `processes.NAME.scaling.slo` with `load:` and `running:` beside it; see
/// docs/slo.md.
public struct SLOScaling: Sendable, Equatable {
  /// Which latency an objective bounds.
  public enum Latency: String, Sendable, Equatable, CaseIterable, Codable {
    /// Time to first token: waiting, then prefill.
    case ttft
    /// Inter-token latency: one decode step of the batch.
    case itl
    /// End to end: waiting and the whole request.
    case e2e
    /// Waiting alone, for queue workers.
    case queueWait = "queue_wait"

    /// Whether time spent waiting for a slot is part of it.
    public var includesWaiting: Bool { self != .itl }
  }

  /// One objective: `percentile`% of requests within `bound`, as `measured` reports it.
  public struct Objective: Sendable, Equatable {
    public var latency: Latency
    /// Above 0 and below 100.
    public var percentile: Double
    /// Seconds.
    public var bound: TimeInterval
    /// The signal that carries the measured percentile of this latency, in seconds.
    public var measured: String
  }

  /// At least one; each latency at most once. The process must meet every one.
  public var objectives: [Objective]
  /// Requests arriving a second, for all the process's replicas together.
  public var load: String
  /// Requests running now, for all the process's replicas together.
  public var running: String
  /// Requests waiting for a slot, for all together; nil where the policy names none.
  public var waiting: String?
  /// The span each measured percentile covers (the range of its query, such as `[1m]`): a
  /// latency is learned only once this long has passed since the replica count changed, so no
  /// sample mixes two fleet sizes.
  public var measuredOver: TimeInterval = 60

  /// What `validate` says of it: the objectives, the signals, and how the models start.
  public var summary: String { "sized on its SLOs: \(settings)" }

  /// The objectives, the signals, and how the models start.
  public var settings: String {
    let bounds = objectives.map {
      "\($0.latency.rawValue) p\(format($0.percentile)) within \(milliseconds($0.bound)) (measured by \($0.measured))"
    }
    return
      "\(bounds.joined(separator: ", ")); load \(load), running \(running)\(waiting.map { ", waiting \($0)" } ?? ""); latencies measured over \(format(measuredOver)) s, learned once that long has passed since the replica count changed; each latency model is used once it has \(LatencyModel.minSamples) samples over \(LatencyModel.minBuckets) concurrencies, the band rule on measured latency until then"
  }

  /// Every signal it reads, in a stable order.
  public var signalNames: [String] {
    var names = [load, running]
    if let waiting { names.append(waiting) }
    for objective in objectives where !names.contains(objective.measured) { names.append(objective.measured) }
    return names
  }
}

struct RawSLOObjective: Decodable {
  var latency, percentile, bound, measured: RawScalar?
  var location: FileLocation

  enum CodingKeys: String, CodingKey, CaseIterable { case latency, percentile, bound, measured }

  init(from decoder: any Decoder) throws {
    location = (decoder as? YAMLNodeDecoder)?.location ?? FileLocation(file: "", line: 1, column: 1)
    let container = try decoder.container(keyedBy: CodingKeys.self)
    latency = try container.decodeIfPresent(RawScalar.self, forKey: .latency)
    percentile = try container.decodeIfPresent(RawScalar.self, forKey: .percentile)
    bound = try container.decodeIfPresent(RawScalar.self, forKey: .bound)
    measured = try container.decodeIfPresent(RawScalar.self, forKey: .measured)
  }
}

extension PolicyValidator {
  /// The objectives and load signals of `scaling:`; nil (with the errors reported) where they
  /// do not make a whole target.
  func validateSLO(
    _ raw: RawOneOrList<RawSLOObjective>, scaling: RawProcessScaling, process: RawScalar,
    references: inout SignalReferences
  ) -> SLOScaling? {
    var objectives: [SLOScaling.Objective] = []
    var whole = true
    for item in raw.items {
      guard let rawLatency = item.latency else {
        sink.error(item.location, "an slo needs latency: ttft, itl, e2e or queue_wait")
        whole = false
        continue
      }
      guard let latency = choice(rawLatency, "slo latency", default: SLOScaling.Latency.ttft) else {
        whole = false
        continue
      }
      if objectives.contains(where: { $0.latency == latency }) {
        sink.error(
          rawLatency.location, "a second slo on \(latency.rawValue): give each latency one objective")
        whole = false
      }
      var percentile = 99.0
      if let rawPercentile = item.percentile {
        let text =
          rawPercentile.text.hasSuffix("%") ? String(rawPercentile.text.dropLast()) : rawPercentile.text
        if let value = Double(text), value > 0, value < 100 {
          percentile = value
        } else {
          sink.error(
            rawPercentile.location,
            "percentile is '\(rawPercentile.text)': give a share of requests above 0 and below 100, such as 99"
          )
          whole = false
        }
      }
      guard let rawBound = item.bound else {
        sink.error(
          item.location, "the slo on \(latency.rawValue) needs bound: the latency to stay within, such as 2s")
        whole = false
        continue
      }
      guard
        let bound = positiveDuration(
          rawBound,
          ifZero:
            "bound is \(rawBound.text): no request is served in no time; give the latency users are promised, such as 2s"
        )
      else {
        whole = false
        continue
      }
      guard let measured = item.measured else {
        sink.error(
          rawLatency.location,
          "no signal measures \(latency.rawValue): give measured: the signal that carries its \(format(percentile))th percentile in seconds"
        )
        whole = false
        continue
      }
      references.note(measured, perReplicaOf: nil, usedBy: process.text)
      objectives.append(
        .init(latency: latency, percentile: percentile, bound: bound, measured: measured.text))
    }
    if raw.items.isEmpty {
      sink.error(
        raw.location,
        "slo is empty: give at least one objective, such as {latency: ttft, percentile: 99, bound: 2s, measured: ttft_p99}"
      )
      whole = false
    }
    guard let load = scaling.load else {
      sink.error(
        raw.location,
        "scaling.slo needs scaling.load: the signal of requests arriving a second, for all replicas together")
      return nil
    }
    guard let running = scaling.running else {
      sink.error(
        raw.location,
        "scaling.slo needs scaling.running: the signal of requests in flight, for all replicas together (vLLM: sum of vllm:num_requests_running)"
      )
      return nil
    }
    for signal in [load, running] + [scaling.waiting].compactMap({ $0 }) {
      references.note(signal, perReplicaOf: nil, usedBy: process.text)
    }
    var measuredOver = 60.0
    if let raw = scaling.measuredOver {
      if let value = positiveDuration(
        raw, ifZero: "measured_over is 0: give the range the measured percentiles' queries cover, such as 1m")
      {
        measuredOver = value
      } else {
        whole = false
      }
    }
    guard whole else { return nil }
    return SLOScaling(
      objectives: objectives, load: load.text, running: running.text, waiting: scaling.waiting?.text,
      measuredOver: measuredOver)
  }
}
