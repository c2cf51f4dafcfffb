import Foundation

/// A budget's state as the design documents name it, by the day's spend against its limit.
public enum BudgetHealth: String, Sendable, Codable, CaseIterable {
  /// Under 80% of the day's limit.
  case healthy
  /// 80% to 90%.
  case warning
  /// 90% to 100%.
  case critical
  /// Over 100%.
  case exceeded

  public static func of(spent: Double, limit: Double?) -> BudgetHealth {
    guard let limit, limit > 0 else { return .healthy }
    let share = spent / limit
    if share > 1 { return .exceeded }
    if share >= 0.9 { return .critical }
    if share >= 0.8 { return .warning }
    return .healthy
  }
}

/// One budget day: what it spent, by process and by hour.
public struct BudgetDay: Sendable, Equatable, Codable {
  public var start: Date
  public var end: Date
  public var spentUSD: Double = 0
  /// By process (its replicas' cost and its own cost-rate metric); a budget's own
  /// `cost_rate_metric` under that metric's name.
  public var byProcess: [String: Double] = [:]
  /// By hour from the day's start (23 to 25 of them, where clocks change).
  public var byHour: [Double]

  init(start: Date, end: Date) {
    self.start = start
    self.end = end
    byHour = Array(repeating: 0, count: max(1, Int((end.timeIntervalSince(start) / 3600).rounded(.up))))
  }
}

/// A `budgets:` budget's day: spend accrued from everything below it, its health, and the freeze
/// of the scale-ups below it.
public struct BudgetDayLedger: Sendable, Equatable, Codable {
  public enum Event: Sendable, Equatable {
    case health(from: BudgetHealth, to: BudgetHealth, spent: Double, limit: Double?)
    case freeze(spent: Double, limit: Double)
    /// A new budget day began; `previous` is the day that ended.
    case reset(previous: BudgetDay)
  }

  /// What costs money below the budget, each under the key its day's `byProcess` shows.
  public struct Spend: Sendable, Equatable {
    public var key: String
    /// Replicas × cost per hour.
    public var computeUSDPerHour: Double
    /// A cost-rate metric (USD per hour) and its value this tick; nil: missing.
    public var metric: String?
    public var metricValue: Double?

    public init(key: String, computeUSDPerHour: Double, metric: String? = nil, metricValue: Double? = nil) {
      self.key = key
      self.computeUSDPerHour = computeUSDPerHour
      self.metric = metric
      self.metricValue = metricValue
    }
  }

  public private(set) var day: BudgetDay?
  /// The day that ended last, kept until the next ends, so its file can be written final.
  public private(set) var previousDay: BudgetDay?
  public private(set) var health: BudgetHealth = .healthy
  /// Past `action_threshold`: no scale-ups below it until the next budget day.
  public private(set) var frozen = false
  public private(set) var lastAccrual: Date?
  /// Each cost-rate metric's last value: a missing sample carries it forward, because a
  /// budget that stops counting during an outage is no protection.
  public private(set) var lastCostRates: [String: Double] = [:]

  public init() {}

  /// Accrues spend up to `now` at the rates in force since the last call, hour by hour, then
  /// raises the events the new total crosses. A gap of days closes the day it began in and
  /// starts the one that holds `now`, so no saved state, however old, writes a record a day.
  public mutating func advance(to now: Date, spends: [Spend], budget: NamedBudget) -> [Event] {
    for spend in spends {
      if let metric = spend.metric, let value = spend.metricValue { lastCostRates[metric] = value }
    }
    guard let start = lastAccrual, var current = day else {
      let span = BudgetLedger.day(containing: now, in: budget.timeZone)
      day = BudgetDay(start: span.start, end: span.end)
      lastAccrual = now
      return []
    }
    guard now > start else { return [] }
    let rates = spends.map { spend in
      (spend.key, spend.computeUSDPerHour + max(0, spend.metric.flatMap { lastCostRates[$0] } ?? 0))
    }
    var events: [Event] = []
    var from = start
    var crossed = 0
    // At most 25 hours a day over at most three days.
    for _ in 0..<100 where from < now {
      let hour = min(current.byHour.count - 1, max(0, Int(from.timeIntervalSince(current.start) / 3600)))
      let to = min(now, current.end, current.start.addingTimeInterval(Double(hour + 1) * 3600))
      let hours = to.timeIntervalSince(from) / 3600
      for (key, rate) in rates where rate > 0 {
        current.spentUSD += rate * hours
        current.byProcess[key, default: 0] += rate * hours
        current.byHour[hour] += rate * hours
      }
      from = to
      guard from >= current.end else { continue }
      events += thresholdEvents(current, budget)
      crossed += 1
      var next = BudgetLedger.day(containing: current.end, in: budget.timeZone)
      if crossed >= 2, now >= next.end { next = BudgetLedger.day(containing: now, in: budget.timeZone) }
      previousDay = current
      events.append(.reset(previous: current))
      current = BudgetDay(start: next.start, end: next.end)
      health = .healthy
      frozen = false
      from = max(from, next.start)
    }
    day = current
    lastAccrual = now
    events += thresholdEvents(current, budget)
    return events
  }

  private mutating func thresholdEvents(_ day: BudgetDay, _ budget: NamedBudget) -> [Event] {
    var events: [Event] = []
    let now = BudgetHealth.of(spent: day.spentUSD, limit: budget.dailyBudgetUSD)
    if now != health {
      events.append(.health(from: health, to: now, spent: day.spentUSD, limit: budget.dailyBudgetUSD))
      health = now
    }
    if !frozen, let limit = budget.dailyBudgetUSD, day.spentUSD >= budget.actionThreshold * limit {
      frozen = true
      events.append(.freeze(spent: day.spentUSD, limit: limit))
    }
    return events
  }
}
