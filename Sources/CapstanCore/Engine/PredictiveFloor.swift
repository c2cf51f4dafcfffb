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
/// value in each slot. Peaks rather than means, because capacity is for the busiest minute of a
/// slot; and the highest of the same values is the same however often they are seen, so a
/// history source read again at every refresh changes nothing.
public struct LoadHistory: Sendable, Equatable, Codable {
  public struct Period: Sendable, Equatable, Codable {
    /// Periods since 1970 (in the profile's time zone).
    public var index: Int
    /// Per slot, the highest value seen; nil where none was.
    public var peaks: [Double?]
  }

  /// In ascending order, the newest last: the periods kept and the current one.
  public private(set) var periods: [Period] = []
  public private(set) var oldest: Date?
  public private(set) var newest: Date?

  public init() {}

  /// Folds in one value; a value older than the periods kept, negative or not finite is ignored.
  mutating func observe(_ value: Double, at time: Date, clock: SlotClock, keep: Int) {
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
      periods.insert(Period(index: position.period, peaks: Array(repeating: nil, count: clock.slots)), at: at)
      index = at
    }
    if let peak = periods[index].peaks[position.slot], peak >= value {
    } else {
      periods[index].peaks[position.slot] = value
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

  /// Per slot, the quantile of its peaks over the periods before `current`; nil where none has one.
  func profile(before current: Int, quantile: Double, slots: Int) -> [Double?] {
    let past = periods.filter { $0.index < current }
    var values: [Double] = []
    values.reserveCapacity(past.count)
    return (0..<slots).map { slot in
      values.removeAll(keepingCapacity: true)
      for period in past { if let peak = period.peaks[slot] { values.append(peak) } }
      return LoadHistory.quantile(&values, quantile)
    }
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
      && periods.allSatisfy { (0..<1_000_000).contains($0.index) && LoadHistory.areLoads($0.peaks) }
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
      history.observe(sample.value, at: sample.time, clock: clock, keep: settings.keptPeriods)
    }
    // Rebuilt at the next tick, with what was just learned.
    builtAt = nil
  }

  /// One tick: learns the signal's value, rebuilds the profile when it is due, and works out the
  /// floor. Returns the floor (nil while it is off) and the condition when it changed.
  mutating func advance(
    value: Double?, now: Date, settings: PredictiveSettings, min: Int, max: Int
  ) -> (floor: PredictiveFloor?, change: (Condition, String)?) {
    let clock = SlotClock(settings)
    fitShape(settings, clock: clock)
    if let value { history.observe(value, at: now, clock: clock, keep: settings.keptPeriods) }
    let position = clock.position(now)
    // Rebuilt every refresh, and when a period ends, so the one just finished counts at once.
    if builtAt.map({
      now.timeIntervalSince($0) >= settings.refresh || now < $0
        || clock.position($0).period != position.period
    }) ?? true {
      profile = history.profile(before: position.period, quantile: settings.quantile, slots: clock.slots)
      builtAt = now
    }
    let (condition, why) = judge(now: now, settings: settings, clock: clock)
    let change = condition != self.condition ? (condition, why) : nil
    self.condition = condition
    guard condition == .active, let profile else { return (nil, change) }

    // The forecast: the profile's highest over [now, now + lookahead], slot by slot.
    var forecast = 0.0
    let ahead = Int(((position.intoSlot + settings.lookahead) / clock.resolution).rounded(.down))
    for step in 0...Swift.min(ahead, clock.slots - 1) {
      if let value = profile[(position.slot + step) % clock.slots] { forecast = Swift.max(forecast, value) }
    }
    // Today against the profile over the last complete slots: a day quieter than its history
    // lowers the floor in proportion. One replica's load on both sides keeps a quiet night
    // (1 against 2) from reading as a holiday.
    var expected: Double?
    var observed: Double?
    let recentSlots = Swift.max(1, Int((settings.recent / clock.resolution).rounded(.up)))
    for back in 1...Swift.min(recentSlots, clock.slots) {
      let slot = (position.slot - back + clock.slots) % clock.slots
      let period = position.slot - back < 0 ? position.period - 1 : position.period
      if let value = profile[slot] { expected = Swift.max(expected ?? 0, value) }
      if let value = history.peak(period: period, slot: slot) { observed = Swift.max(observed ?? 0, value) }
    }
    var scale = 1.0
    if let expected, let observed {
      scale = Swift.min(1, (observed + settings.perReplica) / (expected + settings.perReplica))
    }
    let load = forecast * scale
    var replicas = ceilCount(load / settings.perReplica)
    if let added = settings.maxAdded { replicas = Swift.min(replicas, min.saturatingAdd(added)) }
    replicas = Swift.min(Swift.max(replicas, min), max)
    let floor = PredictiveFloor(
      replicas: replicas, forecast: forecast, load: load, scale: scale, perReplica: settings.perReplica,
      lookahead: settings.lookahead, periods: history.periods.filter { $0.index < position.period }.count,
      historyFrom: history.oldest ?? now, historyTo: history.newest ?? now,
      source: settings.historyDescription)
    return (floor, change)
  }

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
    let periods = history.periods.filter { $0.index < clock.position(now).period }.count
    return (
      .active,
      "a \(settings.seasonality.rawValue) profile of \(signal) from \(periods) \(unit)\(periods == 1 ? "" : "s") of history (\(settings.historyDescription)), the \(Ceilings.format(settings.quantile * 100))th percentile of each \(DurationText.of(settings.resolution)) slot's peak, \(DurationText.of(settings.lookahead)) ahead, \(Ceilings.format(settings.perReplica)) per replica"
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
