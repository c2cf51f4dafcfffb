import Foundation

/// How `capstan simulate` models one process's fleet: what a replica serves at once and how
/// fast, how long it takes to start, which simulated quantity feeds each of the policy's
/// signals, and the SLO the runs are scored on. Set under `processes.NAME.simulation`.
public struct SimulationSettings: Sendable, Equatable {
  /// A quantity the simulator measures on the fleet at each tick, as a scraper would see it.
  public enum Quantity: String, Sendable, Equatable, CaseIterable {
    /// Requests waiting for a slot.
    case queueDepth = "queue_depth"
    /// Seconds the oldest waiting request has waited; 0 when none waits.
    case oldestWait = "oldest_wait"
    /// Busy slots over the slots of ready replicas, in percent; missing with no ready replica.
    case utilization
    /// Requests in flight plus those waiting.
    case concurrency
    /// Requests arrived per second over the last tick.
    case requestRate = "request_rate"
    /// Input and output tokens arrived per second over the last tick.
    case tokenRate = "token_rate"
    /// The 95th percentile of the SLO's latency, over requests started in the last minute;
    /// missing when none started.
    case latencyP95 = "latency_p95"
    /// Requests being served (not waiting), as vLLM's `num_requests_running` summed.
    case running
    /// Time to first token (waiting, prefill and one decode step), in seconds, over requests
    /// started in the last minute: the 99th percentile and the mean. Missing when none
    /// started.
    case ttftP99 = "ttft_p99"
    case ttftMean = "ttft_mean"
    /// Inter-token latency in seconds, over requests started in the last minute.
    case itlP99 = "itl_p99"
    case itlMean = "itl_mean"
    /// End to end, in seconds, over requests started in the last minute.
    case e2eP99 = "e2e_p99"
    /// Waiting for a slot, in seconds, over requests started in the last minute.
    case queueWaitP99 = "queue_wait_p99"
    /// The share (0 to 1) of requests started in the last minute whose SLO latency is within
    /// the bound of `slo`, as a histogram's bucket over its count gives it; missing when none
    /// started.
    case sloWithin = "slo_within"
  }

  /// A decode step's time against the batch it serves: `base + per_request × batch`, the law
  /// a batching engine follows. Each request's inter-token latency is set by its replica's
  /// batch (itself included) when it starts.
  public struct StepLaw: Sendable, Equatable {
    /// Seconds.
    public var base: TimeInterval
    /// Seconds each request in the batch adds.
    public var perRequest: TimeInterval

    public func interTokenLatency(batch: Int) -> TimeInterval { base + perRequest * Double(batch) }
  }

  /// Which latency the SLO bounds.
  public enum Latency: String, Sendable, Equatable, CaseIterable {
    /// Time to first token: queue wait plus prefill (input tokens / prefill rate).
    case ttft
    /// End to end: queue wait plus the whole service time.
    case e2e
    /// Queue wait alone, for queue workers.
    case queueWait = "queue_wait"
  }

  public struct SLO: Sendable, Equatable {
    public var latency: Latency
    /// Seconds.
    public var bound: TimeInterval
    /// The share of requests that must meet the bound, 0 to 1.
    public var target: Double
  }

  /// A quantity measured over one variant's replicas alone (`VARIANT.QUANTITY` in `signals`),
  /// for a variant that learns its capacity from its own signals.
  public struct VariantQuantity: Sendable, Equatable {
    public var variant: String
    public var quantity: Quantity
  }

  /// Where the section is written, for an error about it that is found later (a signal the
  /// policy reads that the section does not map).
  public var location: FileLocation? = nil
  /// Requests one replica serves at once.
  public var slots: Int
  /// LLM traces: a request takes input / prefill + output / decode seconds on its slot.
  public var prefillTokensPerSecond: Double?
  public var decodeTokensPerSecond: Double?
  /// Where set, the decode rate follows the batch instead of `decodeTokensPerSecond`.
  public var itl: StepLaw? = nil
  /// From the moment a replica is asked for until it takes work; it costs from the start.
  public var startup: TimeInterval = 0
  /// How old the values the engine sees are, as a scraper's are: at a tick, the measurement of
  /// the latest tick at least this long ago (none yet: missing).
  public var scrapeLag: TimeInterval = 0
  /// The policy's signal names, each fed by one simulated quantity.
  public var signals: [String: Quantity]
  public var slo: SLO
  /// Signal names fed by a quantity of one variant's replicas.
  public var variantSignals: [String: VariantQuantity] = [:]
  /// Per variant (its name under `variants:`), the speed its simulated replicas serve at where
  /// it is not their declared capacity: the truth a learned capacity is judged against.
  public var speeds: [String: Double] = [:]
}

extension SimulationSettings.Quantity {
  /// Whether it can be measured over one kind of replica: the queue is the process's, so what
  /// waits is not any variant's.
  public var isPerVariant: Bool {
    switch self {
    case .queueDepth, .oldestWait, .concurrency, .tokenRate, .queueWaitP99: false
    default: true
    }
  }
}

struct RawSimulation: Decodable, Sendable {
  var slots, prefillTokensPerSecond, decodeTokensPerSecond, startup, scrapeLag: RawScalar?
  var signals, speeds: RawMap<RawScalar>?
  var slo: RawSLO?
  var itl: RawStepLaw?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case slots, startup, signals, slo, itl, speeds
    case prefillTokensPerSecond = "prefill_tokens_per_second"
    case decodeTokensPerSecond = "decode_tokens_per_second"
    case scrapeLag = "scrape_lag"
  }
}

struct RawStepLaw: Decodable, Sendable {
  var base, perRequest: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case base
    case perRequest = "per_request"
  }
}

struct RawSLO: Decodable, Sendable {
  var latency, bound, target: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable { case latency, bound, target }
}

extension PolicyValidator {
  /// - Parameter variants: the process's variants' names, where it has any.
  func validateSimulation(
    _ raw: RawSimulation, process: RawScalar, startup processStartup: TimeInterval?, variants: [String]?
  )
    -> SimulationSettings?
  {
    let section = "processes.\(process.text).simulation"
    guard let rawSlots = raw.slots else {
      sink.error(process.location, "\(section) needs slots: the requests one replica serves at once")
      return nil
    }
    guard let slots = count(rawSlots, "slots") else { return nil }
    guard slots > 0 else {
      sink.error(rawSlots.location, "slots is 0: a replica must serve at least one request at a time")
      return nil
    }
    let prefill = raw.prefillTokensPerSecond.flatMap { tokenRate($0) }
    let decode = raw.decodeTokensPerSecond.flatMap { tokenRate($0) }
    let startup = raw.startup.flatMap { duration($0) } ?? processStartup ?? 0
    let scrapeLag = raw.scrapeLag.flatMap { duration($0) } ?? 0
    var signals: [String: SimulationSettings.Quantity] = [:]
    var variantSignals: [String: SimulationSettings.VariantQuantity] = [:]
    for (name, value) in raw.signals?.entries ?? [] {
      if let dot = value.text.firstIndex(of: ".") {
        let variant = String(value.text[..<dot])
        let quantity = RawScalar(
          text: String(value.text[value.text.index(after: dot)...]), location: value.location)
        guard knownVariant(variant, variants, at: value.location, section: section),
          let quantity = choice(
            quantity, "signals.\(name.text)", default: SimulationSettings.Quantity.running)
        else { continue }
        guard quantity.isPerVariant else {
          sink.error(
            value.location,
            "signals.\(name.text): \(quantity.rawValue) is the process's, not one variant's (requests wait in one queue for any replica): map it without '\(variant).'"
          )
          continue
        }
        variantSignals[name.text] = .init(variant: variant, quantity: quantity)
        continue
      }
      guard
        let quantity = choice(value, "signals.\(name.text)", default: SimulationSettings.Quantity.queueDepth)
      else { continue }
      signals[name.text] = quantity
    }
    guard let rawSLO = raw.slo, let rawBound = rawSLO.bound else {
      sink.error(
        raw.slo?.latency?.location ?? process.location,
        "\(section) needs slo: {latency: ttft | e2e | queue_wait, bound: 2s, target: 99%}")
      return nil
    }
    guard let latency = choice(rawSLO.latency, "slo.latency", default: SimulationSettings.Latency.e2e),
      let bound = positiveDuration(rawBound, ifZero: "slo.bound must be longer than zero")
    else { return nil }
    let target = rawSLO.target.flatMap { fraction($0, "slo.target") } ?? 0.99
    var settings = SimulationSettings(
      slots: slots, prefillTokensPerSecond: prefill, decodeTokensPerSecond: decode, startup: startup,
      scrapeLag: scrapeLag,
      signals: signals, slo: .init(latency: latency, bound: bound, target: target))
    settings.location = rawSlots.location
    settings.variantSignals = variantSignals
    for (name, value) in raw.speeds?.entries ?? [] {
      guard knownVariant(name.text, variants, at: name.location, section: section),
        let speed = positive(value, "times a replica at capacity 1")
      else { continue }
      settings.speeds[name.text] = speed
    }
    if let law = raw.itl {
      guard let rawBase = law.base, let rawPer = law.perRequest else {
        sink.error(
          process.location,
          "\(section).itl needs base and per_request: a decode step's time, such as {base: 20ms, per_request: 0.4ms}"
        )
        return nil
      }
      guard let base = duration(rawBase), let per = duration(rawPer) else { return nil }
      guard base + per > 0 else {
        sink.error(
          rawBase.location, "\(section).itl takes no time at any batch: give base or per_request above 0")
        return nil
      }
      settings.itl = .init(base: base, perRequest: per)
    }
    return settings
  }
}

extension PolicyValidator {
  /// Whether `name` is one of the process's variants; an error at `location` where it is not.
  private func knownVariant(_ name: String, _ variants: [String]?, at location: FileLocation, section: String)
    -> Bool
  {
    guard let variants else {
      sink.error(location, "\(section) names variant '\(name)', and the process has no variants")
      return false
    }
    guard variants.contains(name) else {
      let hint = closestMatch(to: name, in: variants).map { "; did you mean '\($0)'?" } ?? ""
      sink.error(location, "\(section) names variant '\(name)', which the process does not have\(hint)")
      return false
    }
    return true
  }

  /// The slowest rate a simulated replica may serve at: below it, one request would take more
  /// than a simulation's span, and the arithmetic of its times stops meaning anything.
  static let slowestTokenRate = 0.001

  func tokenRate(_ raw: RawScalar) -> Double? {
    guard let value = positive(raw, "tokens per second") else { return nil }
    guard value >= Self.slowestTokenRate else {
      sink.error(
        raw.location,
        "'\(raw.text)' tokens per second is slower than any server: give at least \(format(Self.slowestTokenRate))"
      )
      return nil
    }
    return value
  }
}
