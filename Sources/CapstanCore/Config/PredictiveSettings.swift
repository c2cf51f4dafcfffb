import Foundation

/// A replica floor learned from the history of one signal: a seasonal profile (by time of day,
/// or by time of week) of the load that signal measures, looked up a startup delay ahead, so a
/// process with slow cold starts is ready before its daily ramp instead of one startup late.
/// Set under `processes.NAME.predictive`. It only raises the floor; the rules scale above it.
public struct PredictiveSettings: Sendable, Equatable {
  /// Where the history comes from besides what the engine sees at each tick, which it always
  /// learns from.
  public enum History: Sendable, Equatable {
    /// Only what the engine sees: no floor until a whole period has been seen.
    case learned
    /// A recorded-metrics file (`capstan record`'s format), the column named like the signal;
    /// relative to the policy file's folder.
    case file(String)
    /// The signal's own Prometheus query, as a range over the history kept.
    case prometheus
  }

  public enum Seasonality: String, Sendable, Equatable, CaseIterable {
    /// One profile for every day: the same time of day, across the days kept.
    case daily
    /// One profile for the week: the same time of the same weekday, across the weeks kept.
    case weekly
  }

  /// The signal whose history is learned: a load that replicas share (an average-value signal).
  public var signal: String
  /// The load one replica carries: the floor is ceil(forecast / perReplica). Nil on a process
  /// scaled on its SLOs, whose forecast is the load its sizing serves a startup ahead (a
  /// profile of each slot's mean, not its peak) rather than a floor of its own.
  public var perReplica: Double?
  public var history: History = .learned
  public var seasonality: Seasonality = .daily
  /// The width of a profile slot: each slot keeps the highest value seen in it each period.
  public var resolution: TimeInterval = 300
  /// Across the periods kept, the quantile of a slot's peaks the profile takes (0.9: a busy day,
  /// not the busiest one).
  public var quantile: Double = 0.9
  /// How far ahead the floor looks: the process's startup delay plus one tick unless set.
  public var lookahead: TimeInterval
  /// The most replicas the floor may add above `min`; nil: up to `max`.
  public var maxAdded: Int?
  /// How often the profile is rebuilt from the history.
  public var refresh: TimeInterval = 600
  /// How much history is kept: two weeks for a daily profile, four for a weekly one.
  public var keep: TimeInterval
  /// The floor is scaled by how today's last `recent` compares with the profile for the same
  /// slots, so a day far quieter than its history (a holiday) does not hold replicas for long.
  public var recent: TimeInterval = 900
  /// History whose newest value is older than this is stale: no floor until it is fresh again.
  public var staleAfter: TimeInterval = 3600
  /// Where days begin, for the profile's slots.
  public var timeZone: TimeZone = .gmt
  public var location: FileLocation?

  /// A day or a week, in seconds.
  public var period: TimeInterval { seasonality == .daily ? 86_400 : 604_800 }

  public var slotsPerPeriod: Int { Int(period / resolution) }

  /// Whether the forecast feeds an SLO-sized process's sizing instead of setting a floor.
  public var feedsSLO: Bool { perReplica == nil }

  /// What messages call it: a floor, or the SLO sizing's seasonal forecast.
  public var name: String { feedsSLO ? "seasonal forecast" : "predictive floor" }

  /// The whole periods `keep` holds, besides the current one.
  var keptPeriods: Int { Int((keep / period).rounded(.up)) }

  /// How `validate` and audit records name where the history comes from.
  public var historyDescription: String {
    switch history {
    case .learned: return "learned from what it sees"
    case .file(let path): return "from \(path) and what it sees"
    case .prometheus: return "from Prometheus and what it sees"
    }
  }
}

extension PredictiveSettings {
  /// For `validate`'s line: what the floor forecasts, how, and how far it may go.
  public func summary(max: Int, min: Int) -> String {
    guard let perReplica else {
      return
        "forecast of \(signal) as the SLO sizing's load ahead: \(seasonality.rawValue) profile of each \(DurationText.of(resolution)) slot's mean, p\(Ceilings.format(quantile * 100)), \(DurationText.of(lookahead)) ahead, history \(historyDescription)"
    }
    let cap = maxAdded.map { "at most \(Swift.min(max, min.saturatingAdd($0)))" } ?? "up to max \(max)"
    return
      "predictive floor on \(signal) at \(Ceilings.format(perReplica)) per replica: \(seasonality.rawValue) profile, \(DurationText.of(resolution)) slots, p\(Ceilings.format(quantile * 100)), \(DurationText.of(lookahead)) ahead, \(cap), history \(historyDescription)"
  }
}

struct RawPredictive: Decodable, Sendable {
  var signal, perReplica, seasonality, resolution, quantile, lookahead, maxAdded, refresh, keep, recent,
    staleAfter, timezone: RawScalar?
  var history: RawPredictiveHistory?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case signal, history, seasonality, resolution, quantile, lookahead, refresh, keep, recent, timezone
    case perReplica = "per_replica", maxAdded = "max_added", staleAfter = "stale_after"
  }
}

/// `history: learned`, `history: prometheus` or `history: {file: PATH}`.
struct RawPredictiveHistory: Decodable, Sendable {
  var name: RawScalar?
  var file: RawScalar?
  var location: FileLocation

  enum CodingKeys: String, CodingKey, CaseIterable { case file }

  init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? YAMLNodeDecoder else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: [], debugDescription: "history needs the YAML decoder"))
    }
    location = decoder.location
    if decoder.node.scalar != nil {
      name = try RawScalar(from: decoder)
      return
    }
    file = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(RawScalar.self, forKey: .file)
  }
}

extension PolicyValidator {
  /// After the process's tracking is known, since the signal and the load per replica default
  /// to its average-value target.
  func validatePredictive(
    _ raw: RawPredictive, startup: TimeInterval?, process: RawScalar, target: ScalingTarget,
    interval: TimeInterval, references: inout SignalReferences
  ) -> PredictiveSettings? {
    let section = "processes.\(process.text).predictive"
    let averageTracking = target.tracking.flatMap { $0.kind == .averageValue ? $0 : nil }
    guard let signal = raw.signal?.text ?? target.slo?.load ?? averageTracking?.metric else {
      sink.error(
        process.location,
        "\(section) needs signal: the load to forecast (the process's scaling metric is used when its target is a plain number, not a percentage)"
      )
      return nil
    }
    if let rawSignal = raw.signal { references.note(rawSignal, perReplicaOf: nil, usedBy: process.text) }
    let perReplica: Double?
    if let slo = target.slo {
      // The SLO sizing turns the forecast into replicas with its learned capacity.
      guard sloForecast(raw, load: slo.load, section: section) else { return nil }
      perReplica = nil
    } else if let rawPerReplica = raw.perReplica {
      guard let value = positive(rawPerReplica, "the load one replica carries") else { return nil }
      perReplica = value
    } else if let tracking = averageTracking, tracking.metric == signal {
      perReplica = tracking.target
    } else {
      sink.error(
        raw.signal?.location ?? process.location,
        "\(section) needs per_replica: the \(signal) one replica carries, to turn the forecast into replicas")
      return nil
    }
    let seasonality = choice(raw.seasonality, "seasonality", default: PredictiveSettings.Seasonality.daily)
    var settings = PredictiveSettings(
      signal: signal, perReplica: perReplica, seasonality: seasonality ?? .daily,
      lookahead: (startup ?? 0) + interval,
      keep: seasonality == .weekly ? 28 * 86_400 : 14 * 86_400, location: process.location)
    if let rawHistory = raw.history {
      switch (rawHistory.name?.text, rawHistory.file) {
      case ("learned", nil): settings.history = .learned
      case ("prometheus", nil): settings.history = .prometheus
      case (nil, let file?) where !file.text.isEmpty: settings.history = .file(file.text)
      default:
        sink.error(
          rawHistory.location,
          "history is '\(rawHistory.name?.text ?? "")': use learned, prometheus, or {file: RECORDING.csv}")
      }
    }
    if let raw = raw.resolution, let value = positiveDuration(raw, ifZero: "resolution must be above zero") {
      if value < 60 || (settings.period / value).rounded() != settings.period / value {
        sink.error(
          raw.location,
          "resolution is \(raw.text): use at least 1m that divides a day evenly, such as 1m, 5m, 15m or 1h")
      } else {
        settings.resolution = value
      }
    }
    if let raw = raw.quantile, let value = fraction(raw, "quantile") { settings.quantile = value }
    if let raw = raw.lookahead, let value = duration(raw) { settings.lookahead = value }
    if let raw = raw.maxAdded, let value = count(raw, "replicas") { settings.maxAdded = value }
    if let raw = raw.refresh, let value = positiveDuration(raw, ifZero: "refresh must be above zero") {
      settings.refresh = value
    }
    // History is kept for days or weeks: longer than the week other durations stop at.
    if let raw = raw.keep,
      let value = reported(Quantity.duration(raw.text, longest: Self.longestKeep), at: raw)
    {
      if value < settings.period {
        sink.error(
          raw.location,
          "keep is \(raw.text), less than the \(seasonality == .weekly ? "week" : "day") a \(settings.seasonality.rawValue) profile needs"
        )
      } else {
        settings.keep = value
      }
    }
    if let raw = raw.recent, let value = positiveDuration(raw, ifZero: "recent must be above zero") {
      settings.recent = value
    }
    if let raw = raw.staleAfter, let value = positiveDuration(raw, ifZero: "stale_after must be above zero") {
      settings.staleAfter = value
    }
    if let rawZone = raw.timezone {
      if let zone = TimeZone(identifier: rawZone.text) {
        settings.timeZone = zone
      } else {
        sink.error(
          rawZone.location,
          "timezone '\(rawZone.text)' is unknown: use an IANA name such as UTC, Europe/Berlin or America/New_York"
        )
      }
    }
    if settings.lookahead < interval {
      sink.warning(
        raw.lookahead?.location ?? process.location,
        "\(section) looks \(Ceilings.format(settings.lookahead))s ahead, less than one tick: set startup on the process, or lookahead"
      )
    }
    return settings
  }
}

extension PolicyValidator {
  /// Whether a predictive section fits a process scaled on its SLOs: it forecasts the sizing's
  /// own load, and takes no per-replica load or cap, which are the learned capacity's.
  func sloForecast(_ raw: RawPredictive, load: String, section: String) -> Bool {
    var fits = true
    if let signal = raw.signal, signal.text != load {
      sink.error(
        signal.location,
        "\(section) forecasts '\(signal.text)', but an SLO-sized process forecasts its scaling.load '\(load)': remove signal, or set it to \(load)"
      )
      fits = false
    }
    for (key, value) in [("per_replica", raw.perReplica), ("max_added", raw.maxAdded)] {
      guard let value else { continue }
      sink.error(
        value.location,
        "\(section).\(key) does not apply to an SLO-sized process: its forecast is the load the learned capacity is sized for, not a floor; remove \(key)"
      )
      fits = false
    }
    return fits
  }

  /// The most history a predictive floor keeps: a year and a month, for a weekly profile of a
  /// year's weeks.
  static let longestKeep: TimeInterval = 400 * 86_400
}
