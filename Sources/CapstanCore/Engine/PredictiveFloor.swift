import Foundation

/// Where a time falls in a seasonal profile: which period (day or week) since 1970, and which
/// slot of it, in the settings' time zone.
struct SlotClock {
  let period: TimeInterval
  let resolution: TimeInterval
  let slots: Int
  let timeZone: TimeZone

  init(_ settings: PredictiveSettings) {
    period = settings.period
    resolution = settings.resolution
    slots = settings.slotsPerPeriod
    timeZone = settings.timeZone
  }

  func position(_ time: Date) -> (period: Int, slot: Int, intoSlot: TimeInterval) {
    let local = time.timeIntervalSince1970 + Double(timeZone.secondsFromGMT(for: time))
    let period = (local / self.period).rounded(.down)
    let offset = local - period * self.period
    let slot = Swift.min(Swift.max(Int((offset / resolution).rounded(.down)), 0), slots - 1)
    return (Int(period), slot, offset - Double(slot) * resolution)
  }
}

/// What a predictive target has seen of its signal: per period (a day or a week), the highest
/// value in each slot, and its mean.
///
/// A floor takes the peaks, because it is the only capacity a rule-scaled process is sure of
/// and must cover the busiest minute of a slot; the highest of the same values is the same
/// however often they are seen, so a history source read again at every refresh changes
/// nothing. An SLO-sized process takes the means: its sizing adds what bursts within a slot
/// need from their measured dispersion, and a profile of peaks would size every slot for its
/// busiest minute twice over. A mean takes each value once: only values later than the last
/// one it took, so a history read again over a span already seen leaves it as it was.
public struct LoadHistory: Sendable, Equatable, Codable {
  public struct Period: Sendable, Equatable, Codable {
    /// Periods since 1970 (in the profile's time zone).
    public var index: Int
    /// Per slot, the highest value seen; nil where none was.
    public var peaks: [Double?]
    /// Per slot, the values taken for its mean; empty where means are not kept (a floor's
    /// history, or a state saved before they were).
    public var means: [SlotMean?]

    init(index: Int, slots: Int) {
      self.index = index
      peaks = Array(repeating: nil, count: slots)
      means = []
    }

    public init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      index = try container.decode(Int.self, forKey: .index)
      peaks = try container.decode([Double?].self, forKey: .peaks)
      means = try container.decodeIfPresent([SlotMean?].self, forKey: .means) ?? []
    }
  }

  /// The values of one slot of one period taken for its mean, and the time of the latest.
  public struct SlotMean: Sendable, Equatable, Codable {
    public var total: Double
    public var count: Int
    public var through: Date

    public var mean: Double { total / Double(max(count, 1)) }
  }

  /// In ascending order, the newest last: the periods kept and the current one.
  public private(set) var periods: [Period] = []
  public private(set) var oldest: Date?
  public private(set) var newest: Date?

  public init() {}

  /// Folds in one value; a value older than the periods kept, negative or not finite is ignored.
  /// - Parameter means: whether the slot's mean is kept too (an SLO forecast); a floor's
  ///   history keeps its peaks alone, and saves no more than they take.
  mutating func observe(_ value: Double, at time: Date, clock: SlotClock, keep: Int, means: Bool = false) {
    guard value.isFinite, value >= 0 else { return }
    let position = clock.position(time)
    if let last = periods.last, position.period < last.index - keep { return }
    let index: Int
    if let found = periods.lastIndex(where: { $0.index <= position.period }),
      periods[found].index == position.period
    {
      index = found
    } else {
      let at = periods.firstIndex { $0.index > position.period } ?? periods.endIndex
      periods.insert(Period(index: position.period, slots: clock.slots), at: at)
      index = at
    }
    if let peak = periods[index].peaks[position.slot], peak >= value {
    } else {
      periods[index].peaks[position.slot] = value
    }
    if means {
      if periods[index].means.count != clock.slots {
        periods[index].means = Array(repeating: nil, count: clock.slots)
      }
      if let taken = periods[index].means[position.slot] {
        if time > taken.through {
          periods[index].means[position.slot] = SlotMean(
            total: taken.total + value, count: taken.count + 1, through: time)
        }
      } else {
        periods[index].means[position.slot] = SlotMean(total: value, count: 1, through: time)
      }
    }
    if let latest = periods.last?.index, let first = periods.first?.index, first < latest - keep {
      periods.removeAll { $0.index < latest - keep }
    }
    if oldest.map({ time < $0 }) ?? true { oldest = time }
    if newest.map({ time > $0 }) ?? true { newest = time }
  }

  func peak(period: Int, slot: Int) -> Double? {
    guard let row = periods.last(where: { $0.index == period }) else { return nil }
    return row.peaks[slot]
  }

  /// Per slot, the quantile of its peaks (or its means) over the periods before `current`; nil
  /// where none has one.
  func profile(before current: Int, quantile: Double, slots: Int, ofMeans: Bool = false) -> [Double?] {
    let past = periods.filter { $0.index < current }
    var values: [Double] = []
    values.reserveCapacity(past.count)
    return (0..<slots).map { slot in
      values.removeAll(keepingCapacity: true)
      for period in past {
        if ofMeans {
          if slot < period.means.count, let taken = period.means[slot] { values.append(taken.mean) }
        } else if let peak = period.peaks[slot] {
          values.append(peak)
        }
      }
      return LoadHistory.quantile(&values, quantile)
    }
  }

  func mean(period: Int, slot: Int) -> Double? {
    guard let row = periods.last(where: { $0.index == period }), slot < row.means.count else { return nil }
    return row.means[slot]?.mean
  }

  /// Linear between the nearest ranks (the usual `type 7`), so 0.5 of [1, 2] is 1.5.
  static func quantile(_ values: inout [Double], _ q: Double) -> Double? {
    guard !values.isEmpty else { return nil }
    values.sort()
    let rank = q * Double(values.count - 1)
    let low = Int(rank.rounded(.down))
    let high = Swift.min(low + 1, values.count - 1)
    return values[low] + (values[high] - values[low]) * (rank - Double(low))
  }

  /// Whether every value is a finite load and the periods are in order and after 1970 (a
  /// period index is days or weeks since then), for a saved state.
  var isSound: Bool {
    zip(periods, periods.dropFirst()).allSatisfy { $0.index < $1.index }
      && periods.allSatisfy {
        (0..<1_000_000).contains($0.index) && LoadHistory.areLoads($0.peaks)
          && ($0.means.isEmpty || $0.means.count == $0.peaks.count)
          && $0.means.allSatisfy { taken in
            taken.map { $0.count > 0 && LoadHistory.areLoads([$0.mean]) } ?? true
          }
      }
  }

  static func areLoads(_ values: [Double?]) -> Bool {
    values.allSatisfy { $0.map { $0.isFinite && $0 >= 0 && $0 <= PolicyLimits.maxMagnitude } ?? true }
  }
}

/// One predictive target's memory: its history, the profile last built from it, and whether the
/// floor was last reported on or off.
public struct ForecastState: Sendable, Equatable, Codable {
  /// Why a floor is off, or that it is on; a change is reported, the same one is not again.
  public enum Condition: String, Sendable, Equatable, Codable {
    case active
    case noHistory = "no_history"
    case tooShort = "too_short"
    case stale
  }

  public var history = LoadHistory()
  public var profile: [Double?]?
  /// Whether `profile` is of each slot's means (an SLO forecast) rather than its peaks.
  public var profileOfMeans: Bool?
  public var builtAt: Date?
  public var condition: Condition?
  /// The period, slot width and time zone the history was kept in: a reloaded policy that
  /// changes them starts a new history rather than reading old slots as new ones.
  public var shape: String?

  public init() {}
}

/// The floor at one tick, with what it came from, for the decision and its audit records.
public struct PredictiveFloor: Sendable, Equatable {
  /// Replicas, within [min, min + max_added] and max.
  public var replicas: Int
  /// The profile's highest value over the lookahead.
  public var forecast: Double
  /// forecast × scale: the load the floor is sized for.
  public var load: Double
  /// How today's recent peaks compare with the profile's for the same slots, at most 1.
  public var scale: Double
  public var perReplica: Double
  public var lookahead: TimeInterval
  /// Periods (days or weeks) of history the profile was built from, and the times it spans.
  public var periods: Int
  public var historyFrom: Date
  public var historyTo: Date
  public var source: String
}

extension ForecastState {
  mutating func learn(
    _ samples: some Sequence<(time: Date, value: Double)>, before: Date, settings: PredictiveSettings
  ) {
    let clock = SlotClock(settings)
    fitShape(settings, clock: clock)
    for sample in samples where sample.time < before {
      history.observe(
        sample.value, at: sample.time, clock: clock, keep: settings.keptPeriods, means: settings.feedsSLO)
    }
    // Rebuilt at the next tick, with what was just learned.
    builtAt = nil
  }

  /// One tick: learns the signal's value, rebuilds the profile when it is due, and works out the
  /// floor. Returns the floor (nil while it is off) and the condition when it changed.
  mutating func advance(
    value: Double?, now: Date, settings: PredictiveSettings, min: Int, max: Int
  ) -> (floor: PredictiveFloor?, change: (Condition, String)?) {
    guard let perReplica = settings.perReplica else { return (nil, nil) }
    let (active, change) = step(value: value, now: now, settings: settings)
    guard let active else { return (nil, change) }
    let forecast = active.ahead(settings)
    // Today against the profile over the last complete slots: a day quieter than its history
    // lowers the floor in proportion. One replica's load on both sides keeps a quiet night
    // (1 against 2) from reading as a holiday.
    let recent = active.recent(settings) { history.peak(period: $0, slot: $1) }
    var scale = 1.0
    if let expected = recent.expected, let observed = recent.observed {
      scale = Swift.min(1, (observed + perReplica) / (expected + perReplica))
    }
    let load = forecast * scale
    var replicas = ceilCount(load / perReplica)
    if let added = settings.maxAdded { replicas = Swift.min(replicas, min.saturatingAdd(added)) }
    replicas = Swift.min(Swift.max(replicas, min), max)
    let floor = PredictiveFloor(
      replicas: replicas, forecast: forecast, load: load, scale: scale, perReplica: perReplica,
      lookahead: settings.lookahead, periods: periodsBefore(active.position.period),
      historyFrom: history.oldest ?? now, historyTo: history.newest ?? now,
      source: settings.historyDescription)
    return (floor, change)
  }

  /// A profile at one tick, where it stands in it, for the floor and the SLO forecast.
  struct ActiveProfile {
    let profile: [Double?]
    let clock: SlotClock
    let position: (period: Int, slot: Int, intoSlot: TimeInterval)

    /// The profile's highest over [now, now + lookahead], slot by slot.
    func ahead(_ settings: PredictiveSettings) -> Double {
      var forecast = 0.0
      let ahead = Int(((position.intoSlot + settings.lookahead) / clock.resolution).rounded(.down))
      for step in 0...Swift.min(ahead, clock.slots - 1) {
        if let value = profile[(position.slot + step) % clock.slots] { forecast = Swift.max(forecast, value) }
      }
      return forecast
    }

    /// The highest of the profile and of today (`seen`) over the last complete slots of
    /// `recent`.
    func recent(_ settings: PredictiveSettings, seen: (_ period: Int, _ slot: Int) -> Double?) -> (
      expected: Double?, observed: Double?
    ) {
      var expected: Double?
      var observed: Double?
      let recentSlots = Swift.max(1, Int((settings.recent / clock.resolution).rounded(.up)))
      for back in 1...Swift.min(recentSlots, clock.slots) {
        let slot = (position.slot - back + clock.slots) % clock.slots
        let period = position.slot - back < 0 ? position.period - 1 : position.period
        if let value = profile[slot] { expected = Swift.max(expected ?? 0, value) }
        if let value = seen(period, slot) { observed = Swift.max(observed ?? 0, value) }
      }
      return (expected, observed)
    }
  }

  /// One tick's learning: folds in the signal's value, rebuilds the profile (of peaks for a
  /// floor, of means for an SLO forecast) when it is due, and judges whether it may be used.
  /// Returns the profile while it is on, and the condition when it changed.
  mutating func step(value: Double?, now: Date, settings: PredictiveSettings) -> (
    active: ActiveProfile?, change: (Condition, String)?
  ) {
    let clock = SlotClock(settings)
    fitShape(settings, clock: clock)
    if let value {
      history.observe(value, at: now, clock: clock, keep: settings.keptPeriods, means: settings.feedsSLO)
    }
    let position = clock.position(now)
    // Rebuilt every refresh, and when a period ends, so the one just finished counts at once.
    if profileOfMeans != settings.feedsSLO
      || builtAt.map({
        now.timeIntervalSince($0) >= settings.refresh || now < $0
          || clock.position($0).period != position.period
      }) ?? true
    {
      profile = history.profile(
        before: position.period, quantile: settings.quantile, slots: clock.slots, ofMeans: settings.feedsSLO)
      profileOfMeans = settings.feedsSLO
      builtAt = now
    }
    let (condition, why) = judge(now: now, settings: settings, clock: clock)
    let change = condition != self.condition ? (condition, why) : nil
    self.condition = condition
    guard condition == .active, let profile else { return (nil, change) }
    return (ActiveProfile(profile: profile, clock: clock, position: position), change)
  }

  func periodsBefore(_ period: Int) -> Int { history.periods.filter { $0.index < period }.count }

  /// Starts afresh when the settings' slots are not the ones kept (a reload that changed them,
  /// a saved state edited by hand), so no slot is read against another's meaning or past its end.
  private mutating func fitShape(_ settings: PredictiveSettings, clock: SlotClock) {
    let wanted = "\(Int(settings.period))/\(Int(settings.resolution))/\(settings.timeZone.identifier)"
    let fits =
      shape == wanted && history.periods.allSatisfy { $0.peaks.count == clock.slots }
      && (profile?.count ?? clock.slots) == clock.slots
    guard !fits else { return }
    self = ForecastState()
    shape = wanted
  }

  private func judge(now: Date, settings: PredictiveSettings, clock: SlotClock) -> (Condition, String) {
    let signal = settings.signal
    let unit = settings.seasonality == .daily ? "day" : "week"
    guard let oldest = history.oldest, let newest = history.newest else {
      return (.noHistory, "no history of \(signal) yet")
    }
    let span = now.timeIntervalSince(oldest)
    if span < settings.period || !(profile ?? []).contains(where: { $0 != nil }) {
      return (
        .tooShort,
        "the history of \(signal) covers \(DurationText.of(Swift.max(0, span))) of the \(unit) a \(settings.seasonality.rawValue) profile needs"
      )
    }
    let age = now.timeIntervalSince(newest)
    if age > settings.staleAfter {
      return (
        .stale,
        "the newest value of \(signal) is \(DurationText.of(age)) old, past stale_after \(DurationText.of(settings.staleAfter))"
      )
    }
    let periods = periodsBefore(clock.position(now).period)
    let use =
      settings.perReplica.map { "\(Ceilings.format($0)) per replica" } ?? "as the SLO sizing's load ahead"
    return (
      .active,
      "a \(settings.seasonality.rawValue) profile of \(signal) from \(periods) \(unit)\(periods == 1 ? "" : "s") of history (\(settings.historyDescription)), the \(Ceilings.format(settings.quantile * 100))th percentile of each \(DurationText.of(settings.resolution)) slot's \(settings.feedsSLO ? "mean" : "peak"), \(DurationText.of(settings.lookahead)) ahead, \(use)"
    )
  }
}

/// Durations as people write them: 2m15s, 3h, 1d4h. (Not `Duration`, which would hide the
/// standard library's type throughout the module.)
public enum DurationText {
  /// `1d2h3m4s`, saturating for a duration past any calendar.
  public static func of(_ seconds: TimeInterval) -> String {
    var left = Int(saturating: seconds.rounded())
    if left == 0 { return "0s" }
    var parts = ""
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] where left >= size {
      parts += "\(left / size)\(unit)"
      left %= size
    }
    return parts
  }
}
