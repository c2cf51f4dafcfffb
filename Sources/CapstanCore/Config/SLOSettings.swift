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
    /// The signal that carries the share of requests within `bound` (0 to 1, over the span a
    /// latency is measured over), and the rolling period the percentile is judged over: where
    /// set, the objective keeps an error budget (see `ErrorBudget`). Nil: the percentile is
    /// held at every tick.
    public var within: String? = nil
    public var period: TimeInterval? = nil
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
    let bounds = objectives.map { objective in
      var text =
        "\(objective.latency.rawValue) p\(format(objective.percentile)) within \(milliseconds(objective.bound)) (measured by \(objective.measured))"
      if let within = objective.within, let period = objective.period {
        text += " over a rolling \(periodText(period)), its error budget counted from \(within)"
      }
      return text
    }
    return
      "\(bounds.joined(separator: ", ")); load \(load), running \(running)\(waiting.map { ", waiting \($0)" } ?? ""); latencies measured over \(format(measuredOver)) s, learned once that long has passed since the replica count changed; each latency model is used once it has \(LatencyModel.minSamples) samples over \(LatencyModel.minBuckets) concurrencies, the band rule on measured latency until then"
  }

  /// The signals of the objectives' error budgets: their outage holds no scale-down, as the
  /// budget only counts nothing until they return.
  public var budgetSignalNames: [String] { objectives.compactMap(\.within) }

  /// The signals the sizing reads: any of them missing vetoes a scale-down.
  public var sizingSignalNames: [String] {
    var names = [load, running]
    if let waiting { names.append(waiting) }
    for objective in objectives where !names.contains(objective.measured) { names.append(objective.measured) }
    return names
  }

  /// Every signal it reads, in a stable order.
  public var signalNames: [String] {
    var names = sizingSignalNames
    for name in budgetSignalNames where !names.contains(name) { names.append(name) }
    return names
  }
}

struct RawSLOObjective: Decodable {
  var latency, percentile, bound, measured, within, period: RawScalar?
  var location: FileLocation

  enum CodingKeys: String, CodingKey, CaseIterable {
    case latency, percentile, bound, measured, within, period
  }

  init(from decoder: any Decoder) throws {
    location = (decoder as? YAMLNodeDecoder)?.location ?? FileLocation(file: "", line: 1, column: 1)
    let container = try decoder.container(keyedBy: CodingKeys.self)
    latency = try container.decodeIfPresent(RawScalar.self, forKey: .latency)
    percentile = try container.decodeIfPresent(RawScalar.self, forKey: .percentile)
    bound = try container.decodeIfPresent(RawScalar.self, forKey: .bound)
    measured = try container.decodeIfPresent(RawScalar.self, forKey: .measured)
    within = try container.decodeIfPresent(RawScalar.self, forKey: .within)
    period = try container.decodeIfPresent(RawScalar.self, forKey: .period)
  }
}

extension PolicyValidator {
  /// The period an objective with `within:` and no `period:` is judged over.
  static let defaultSLOPeriod: TimeInterval = 86_400
  /// An error budget counts misses in slots of a 96th of its period; under an hour, a slot would
  /// be shorter than the span a latency is measured over.
  static let shortestSLOPeriod: TimeInterval = 3_600
  static let longestSLOPeriod: TimeInterval = 400 * 86_400

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
      // Noted before the rest is checked: an objective refused for its bound still reads its
      // signals, and a warning that they are read by nothing would send the reader astray.
      if let measured = item.measured { references.note(measured, perReplicaOf: nil, usedBy: process.text) }
      if let within = item.within { references.note(within, perReplicaOf: nil, usedBy: process.text) }
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
      var period: TimeInterval?
      if item.within != nil {
        period = Self.defaultSLOPeriod
        if let rawPeriod = item.period {
          // Judged over days or weeks (30d is common): longer than the week other durations stop at.
          guard
            let value = reported(
              Quantity.duration(rawPeriod.text, longest: Self.longestSLOPeriod), at: rawPeriod)
          else {
            whole = false
            continue
          }
          guard value >= Self.shortestSLOPeriod else {
            sink.error(
              rawPeriod.location,
              "period is \(rawPeriod.text): an error budget needs a period of at least 1h to count misses over, such as 24h or 30d"
            )
            whole = false
            continue
          }
          period = value
        }
      } else if let rawPeriod = item.period {
        sink.error(
          rawPeriod.location,
          "period needs within: the signal that carries the share of requests within the bound (vLLM: a bucket of the latency's histogram over its count), from which the period's misses are counted"
        )
        whole = false
        continue
      }
      objectives.append(
        .init(
          latency: latency, percentile: percentile, bound: bound, measured: measured.text,
          within: item.within?.text, period: period))
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

/// A period in the largest whole unit it fills, days from two on: 30d, 24h, 90m.
func periodText(_ seconds: TimeInterval) -> String {
  let days = seconds / 86_400
  let hours = seconds / 3_600
  let minutes = seconds / 60
  if days >= 2, days.rounded() == days { return "\(format(days))d" }
  if hours >= 1, hours.rounded() == hours { return "\(format(hours))h" }
  if minutes.rounded() == minutes { return "\(format(minutes))m" }
  return "\(format(seconds))s"
}
