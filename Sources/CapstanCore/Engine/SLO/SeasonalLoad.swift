import Foundation

/// The load an SLO-sized process's seasonal profile expects over the next startup delay: the
/// profile of each slot's mean across the days (or weeks) kept, scaled to how today compares.
/// The sizing serves the higher of it and the load's own trend, so replicas are asked for a
/// startup ahead of a daily ramp the trend cannot see coming.
public struct SeasonalLoad: Sendable, Equatable {
  /// The profile's highest slot mean over the lookahead.
  public var profile: Double
  /// How today's last complete slots compare with the profile's for the same slots, at most 1.
  public var scale: Double
  /// profile × scale: the load the sizing is given.
  public var load: Double
  public var lookahead: TimeInterval
  /// Periods (days or weeks) of history the profile was built from.
  public var periods: Int
}

extension ForecastState {
  /// One tick of an SLO forecast: learns the load's value and works out what the profile
  /// expects; nil while the profile is off. Returns the condition when it changed.
  mutating func advanceLoad(
    value: Double?, now: Date, settings: PredictiveSettings
  ) -> (load: SeasonalLoad?, change: (Condition, String)?) {
    let (active, change) = step(value: value, now: now, settings: settings)
    guard let active else { return (nil, change) }
    let profile = active.ahead(settings)
    // A day quieter than its history lowers the forecast in proportion (a holiday, a busy
    // day's quantile against an ordinary day). A tenth of the profile's busiest slot on both
    // sides keeps a quiet night's few requests from reading as a holiday.
    let recent = active.recent(settings) { history.mean(period: $0, slot: $1) }
    let offset = 0.1 * (active.profile.lazy.compactMap { $0 }.max() ?? 0)
    var scale = 1.0
    if let expected = recent.expected, let observed = recent.observed, expected + offset > 0 {
      scale = Swift.min(1, (observed + offset) / (expected + offset))
    }
    return (
      SeasonalLoad(
        profile: profile, scale: scale, load: profile * scale, lookahead: settings.lookahead,
        periods: periodsBefore(active.position.period)),
      change
    )
  }
}
