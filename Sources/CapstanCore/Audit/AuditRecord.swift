import Foundation

/// What an audit record reports. The raw values are the `event` field.
public enum AuditEventKind: String, Sendable, Codable, CaseIterable {
  case scaleUp = "scale_up"
  case scaleDown = "scale_down"
  case blocked
  case signalMissing = "signal_missing"
  case signalRestored = "signal_restored"
  case budgetAlert = "budget_alert"
  case budgetFreeze = "budget_freeze"
  case budgetReset = "budget_reset"
  /// A reloaded policy took effect (`process` is `*`).
  case policyReloaded = "policy_reloaded"
  /// A reloaded policy was invalid and the running one was kept (`process` is `*`).
  case policyRejected = "policy_rejected"
  /// The backend reports a count Capstan did not set; it is adopted as the current one.
  case externalChange = "external_change"
  /// Something works against the policy (a drain cut short, a predictive floor with no usable
  /// history); nothing changed.
  case warning
  /// A predictive floor has the history it needs and applies from now on.
  case predictiveFloor = "predictive_floor"
  /// This Capstan became the leader and acts from now on (`process` is `*`).
  case leaderElected = "leader_elected"
  /// This Capstan stopped leading and acts no more (`process` is `*`).
  case leaderLost = "leader_lost"
}

/// Which driver wrote a record.
public enum AuditMode: String, Sendable, Codable {
  case replay
  case simulate
  case dryRun = "dry_run"
  case live
  /// `capstan run --keda-scaler`: decided here, carried out by KEDA.
  case keda
}

public struct BudgetSnapshot: Sendable, Equatable, Codable {
  public var spentUSD: Double
  public var limitUSD: Double
  public var state: BudgetLedger.State

  enum CodingKeys: String, CodingKey {
    case spentUSD = "spent_usd"
    case limitUSD = "limit_usd"
    case state
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(AuditRecord.fourDecimals(spentUSD), forKey: .spentUSD)
    try container.encode(AuditRecord.fourDecimals(limitUSD), forKey: .limitUSD)
    try container.encode(state, forKey: .state)
  }
}

/// A `budgets:` budget's day as a record of it shows it.
public struct NamedBudgetSnapshot: Sendable, Equatable, Codable {
  public var name: String
  public var spentUSD: Double
  /// nil for a budget with caps and no day's limit.
  public var limitUSD: Double?
  public var health: BudgetHealth
  public var frozen: Bool

  enum CodingKeys: String, CodingKey {
    case name, health, frozen
    case spentUSD = "spent_usd"
    case limitUSD = "limit_usd"
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(name, forKey: .name)
    try container.encode(AuditRecord.fourDecimals(spentUSD), forKey: .spentUSD)
    try container.encodeIfPresent(limitUSD.map(AuditRecord.fourDecimals), forKey: .limitUSD)
    try container.encode(health, forKey: .health)
    try container.encode(frozen, forKey: .frozen)
  }
}

/// One event the engine reports: a change, a blocked change, a signal outage, a budget step.
public struct AuditEvent: Sendable, Equatable {
  public var time: Date
  public var process: String
  public var kind: AuditEventKind
  public var from: Int?
  /// For `blocked`, the count that was wanted.
  public var to: Int?
  public var reason: ScaleReason
  /// One sentence naming the values that drove it.
  public var detail: String
  /// The target's signals at this tick, in the target's order; nil is missing.
  public var signals: [(name: String, value: Double?)]
  public var budget: BudgetSnapshot?
  /// Replicas after the event × cost per hour; nil when the process has no cost.
  public var costPerHourUSD: Double?
  /// The predictive floor at this tick and what it came from; nil without one.
  public var forecast: PredictiveFloor?
  /// For a `budgets:` budget's own records (`process` is `*`): its day.
  public var namedBudget: NamedBudgetSnapshot?
  /// For a process scaled on its SLOs: the models, the capacity, the forecast and the count
  /// they give.
  public var slo: SLOSizing? = nil

  public init(
    time: Date, process: String, kind: AuditEventKind, from: Int?, to: Int?, reason: ScaleReason,
    detail: String,
    signals: [(name: String, value: Double?)], budget: BudgetSnapshot?, costPerHourUSD: Double?,
    forecast: PredictiveFloor? = nil, namedBudget: NamedBudgetSnapshot? = nil
  ) {
    self.time = time
    self.process = process
    self.kind = kind
    self.from = from
    self.to = to
    self.reason = reason
    self.detail = detail
    self.signals = signals
    self.budget = budget
    self.costPerHourUSD = costPerHourUSD
    self.forecast = forecast
    self.namedBudget = namedBudget
  }

  public static func == (a: AuditEvent, b: AuditEvent) -> Bool {
    a.time == b.time && a.process == b.process && a.kind == b.kind && a.from == b.from && a.to == b.to
      && a.reason == b.reason && a.detail == b.detail && a.budget == b.budget
      && a.costPerHourUSD == b.costPerHourUSD && a.forecast == b.forecast && a.namedBudget == b.namedBudget
      && a.slo == b.slo
      && a.signals.map(\.name) == b.signals.map(\.name) && a.signals.map(\.value) == b.signals.map(\.value)
  }
}

/// The JSON Lines form of an `AuditEvent`, the same in replay, dry-run and live runs.
public struct AuditRecord: Sendable, Encodable {
  public var event: AuditEvent
  public var mode: AuditMode

  public init(_ event: AuditEvent, mode: AuditMode) {
    self.event = event
    self.mode = mode
  }

  enum CodingKeys: String, CodingKey {
    case time, process, event, from, to, reason, detail, signals, budget, mode, forecast, slo
    case costPerHourUSD = "cost_per_hour_usd", namedBudget = "named_budget"
  }

  enum SLOKeys: String, CodingKey {
    case mode, load, forecast, trend, seasonal, capacity, slots, dispersion, replicas, objectives, corrected
    case settling, spending, misses, consolidation
    case notReady = "not_ready", durationSeconds = "duration_s", heldDown = "held_down"
  }

  enum ConsolidationKeys: String, CodingKey {
    case peak, room, replicas
  }

  enum MissKeys: String, CodingKey {
    case latency, units, load, allowed, missed
    case missedWithFewer = "missed_with_fewer"
  }

  enum SeasonalKeys: String, CodingKey {
    case profile, scale, load, periods
    case lookaheadSeconds = "lookahead_s"
  }

  enum ObjectiveKeys: String, CodingKey {
    case latency, percentile, alpha, beta, samples, capacity, aim
    case periodShare = "period_share", budgetLeft = "budget_left", periodCounted = "period_counted_s"
    case boundSeconds = "bound_s", measuredSeconds = "measured_s", rSquared = "r2"
  }

  enum ForecastKeys: String, CodingKey {
    case replicas, forecast, load, scale, source, periods
    case perReplica = "per_replica", lookaheadSeconds = "lookahead_s"
    case historyFrom = "history_from", historyTo = "history_to"
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(RFC3339.string(from: event.time), forKey: .time)
    try container.encode(event.process, forKey: .process)
    try container.encode(event.kind.rawValue, forKey: .event)
    try container.encodeIfPresent(event.from, forKey: .from)
    try container.encodeIfPresent(event.to, forKey: .to)
    try container.encode(event.reason.rawValue, forKey: .reason)
    try container.encode(event.detail, forKey: .detail)
    var signals: [String: Double?] = [:]
    for (name, value) in event.signals { signals[name] = value }
    try container.encode(signals, forKey: .signals)
    try container.encodeIfPresent(event.budget, forKey: .budget)
    try container.encodeIfPresent(event.namedBudget, forKey: .namedBudget)
    try container.encodeIfPresent(event.costPerHourUSD.map(Self.fourDecimals), forKey: .costPerHourUSD)
    try container.encode(mode.rawValue, forKey: .mode)
    if let floor = event.forecast {
      var nested = container.nestedContainer(keyedBy: ForecastKeys.self, forKey: .forecast)
      try nested.encode(floor.replicas, forKey: .replicas)
      try nested.encode(Self.fourDecimals(floor.forecast), forKey: .forecast)
      try nested.encode(Self.fourDecimals(floor.load), forKey: .load)
      try nested.encode(Self.fourDecimals(floor.scale), forKey: .scale)
      try nested.encode(floor.perReplica, forKey: .perReplica)
      try nested.encode(floor.lookahead, forKey: .lookaheadSeconds)
      try nested.encode(floor.periods, forKey: .periods)
      try nested.encode(RFC3339.string(from: floor.historyFrom), forKey: .historyFrom)
      try nested.encode(RFC3339.string(from: floor.historyTo), forKey: .historyTo)
      try nested.encode(floor.source, forKey: .source)
    }
    if let sizing = event.slo { try encode(sizing, into: &container) }
  }

  private func encode(_ sizing: SLOSizing, into container: inout KeyedEncodingContainer<CodingKeys>) throws {
    let six = { (value: Double) in (value * 1_000_000).rounded() / 1_000_000 }
    var nested = container.nestedContainer(keyedBy: SLOKeys.self, forKey: .slo)
    try nested.encode(sizing.mode.rawValue, forKey: .mode)
    try nested.encodeIfPresent(sizing.notReady, forKey: .notReady)
    try nested.encode(Self.fourDecimals(sizing.load), forKey: .load)
    try nested.encode(Self.fourDecimals(sizing.forecast), forKey: .forecast)
    try nested.encode(Self.fourDecimals(sizing.trend), forKey: .trend)
    if let seasonal = sizing.seasonal {
      var profile = nested.nestedContainer(keyedBy: SeasonalKeys.self, forKey: .seasonal)
      try profile.encode(Self.fourDecimals(seasonal.profile), forKey: .profile)
      try profile.encode(Self.fourDecimals(seasonal.scale), forKey: .scale)
      try profile.encode(Self.fourDecimals(seasonal.load), forKey: .load)
      try profile.encode(seasonal.periods, forKey: .periods)
      try profile.encode(seasonal.lookahead, forKey: .lookaheadSeconds)
    }
    try nested.encodeIfPresent(sizing.duration.map(Self.fourDecimals), forKey: .durationSeconds)
    try nested.encodeIfPresent(sizing.capacity.map(Self.fourDecimals), forKey: .capacity)
    try nested.encodeIfPresent(sizing.slots.map(Self.fourDecimals), forKey: .slots)
    try nested.encodeIfPresent(sizing.dispersion.map(Self.fourDecimals), forKey: .dispersion)
    try nested.encode(sizing.replicas, forKey: .replicas)
    try nested.encode(sizing.corrected, forKey: .corrected)
    try nested.encode(sizing.settling, forKey: .settling)
    if sizing.spending { try nested.encode(true, forKey: .spending) }
    try nested.encodeIfPresent(sizing.heldDown, forKey: .heldDown)
    if let misses = sizing.byMisses {
      var curve = nested.nestedContainer(keyedBy: MissKeys.self, forKey: .misses)
      try curve.encode(misses.latency.rawValue, forKey: .latency)
      try curve.encode(misses.units, forKey: .units)
      try curve.encode(Self.fourDecimals(misses.load), forKey: .load)
      try curve.encode(six(misses.allowed), forKey: .allowed)
      try curve.encode(six(misses.missedWithFewer), forKey: .missedWithFewer)
      try curve.encodeIfPresent(misses.missed.map(six), forKey: .missed)
    }
    if let peak = sizing.consolidation {
      var held = nested.nestedContainer(keyedBy: ConsolidationKeys.self, forKey: .consolidation)
      try held.encode(Self.fourDecimals(peak.peak), forKey: .peak)
      try held.encode(Self.fourDecimals(peak.room), forKey: .room)
      try held.encode(peak.replicas, forKey: .replicas)
    }
    var list = nested.nestedUnkeyedContainer(forKey: .objectives)
    for objective in sizing.objectives {
      var item = list.nestedContainer(keyedBy: ObjectiveKeys.self)
      try item.encode(objective.latency.rawValue, forKey: .latency)
      try item.encode(objective.percentile, forKey: .percentile)
      try item.encode(six(objective.bound), forKey: .boundSeconds)
      try item.encodeIfPresent(objective.measured.map(six), forKey: .measuredSeconds)
      if let fit = objective.fit {
        try item.encode(six(fit.alpha), forKey: .alpha)
        try item.encode(six(fit.beta), forKey: .beta)
        try item.encode(fit.samples, forKey: .samples)
        try item.encode(Self.fourDecimals(fit.rSquared), forKey: .rSquared)
      }
      try item.encodeIfPresent(objective.capacity.map(Self.fourDecimals), forKey: .capacity)
      if let budget = objective.budget {
        try item.encode(six(budget.share), forKey: .periodShare)
        try item.encode(budget.counted.rounded(), forKey: .periodCounted)
        try item.encode(Self.fourDecimals(budget.left), forKey: .budgetLeft)
        try item.encode(Self.fourDecimals(budget.aim), forKey: .aim)
      }
    }
  }

  /// One line of JSON, keys sorted so that the same events give the same bytes.
  public func jsonLine() -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Values are checked finite where they enter; should one slip through, it is written as a
    // string rather than stopping the controller.
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let data = (try? encoder.encode(self)) ?? Data(#"{"error":"unencodable audit record"}"#.utf8)
    return String(decoding: data, as: UTF8.self)
  }

  /// Money to a hundredth of a cent (enough for any bill), forecasts to the same four decimals (a
  /// floor is a count): free of floating-point tails.
  static func fourDecimals(_ value: Double) -> Double { (value * 10_000).rounded() / 10_000 }
}

/// RFC 3339 in UTC with whole seconds, or milliseconds where the time has them.
public enum RFC3339 {
  public static func string(from date: Date) -> String {
    let seconds = date.timeIntervalSince1970
    let whole = seconds.rounded(.down)
    let millis = Int(((seconds - whole) * 1000).rounded())
    var time = time_t(whole)
    var parts = tm()
    gmtime_r(&time, &parts)
    let base = String(
      format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
      Int(parts.tm_mday),
      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    return millis == 0 || millis == 1000 ? base + "Z" : base + String(format: ".%03dZ", millis)
  }
}
