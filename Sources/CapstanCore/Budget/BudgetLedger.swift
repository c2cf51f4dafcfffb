import Foundation

/// A day's spend against a `CostCircuitBreaker`: compute cost (replicas × cost per hour) plus the
/// integral of the cost-rate metric, reset at 00:00 in the breaker's time zone.
public struct BudgetLedger: Sendable, Equatable, Codable {
  public enum State: String, Sendable, Codable {
    case ok
    /// Past the alert threshold: an alert was raised, scaling goes on.
    case alert
    /// Past the action threshold: no scale-ups until the next budget day; scale-downs still run.
    case frozen
  }

  public enum Event: Sendable, Equatable {
    case alert(spent: Double, limit: Double)
    case freeze(spent: Double, limit: Double)
    /// A new budget day began; `previousSpent` is what the day that ended spent.
    case reset(previousSpent: Double, dayStart: Date)

    var isFreeze: Bool {
      if case .freeze = self { return true }
      return false
    }
  }

  public private(set) var spentUSD: Double = 0
  public private(set) var state: State = .ok
  public private(set) var dayStart: Date?
  public private(set) var dayEnd: Date?
  public private(set) var lastAccrual: Date?
  /// The last cost-rate value seen; a missing sample carries it forward, because a budget that
  /// stops counting during an outage is no protection.
  public private(set) var lastCostRate: Double?

  public init() {}

  /// Accrues spend up to `now` at the rate in force over the interval since the last call, then
  /// raises the events the new total crosses. Crossing a day boundary splits the interval.
  public mutating func advance(
    to now: Date, replicas: Int, costPerHourUSD: Double?, costRate: Double?, breaker: CostCircuitBreaker
  ) -> [Event] {
    if let costRate { lastCostRate = costRate }
    guard let start = lastAccrual, var end = dayEnd else {
      let day = Self.day(containing: now, in: breaker.timeZone)
      dayStart = day.start
      dayEnd = day.end
      lastAccrual = now
      return thresholdEvents(breaker)
    }
    guard now > start else { return [] }
    let ratePerHour = Double(replicas) * (costPerHourUSD ?? 0) + max(0, lastCostRate ?? 0)
    var events: [Event] = []
    var from = start
    // One reset a day crossed, at most two: a longer gap (a controller stopped for a week)
    // closes the day it was in and starts the day that holds `now`, so no saved state, however
    // old, makes a tick write a record per day missed.
    var crossed = 0
    while now >= end {
      spentUSD += ratePerHour * end.timeIntervalSince(from) / 3600
      events += thresholdEvents(breaker)
      crossed += 1
      var next = Self.day(containing: end, in: breaker.timeZone)
      if crossed >= 2, now >= next.end { next = Self.day(containing: now, in: breaker.timeZone) }
      events.append(.reset(previousSpent: spentUSD, dayStart: next.start))
      spentUSD = 0
      state = .ok
      from = next.start
      dayStart = next.start
      end = next.end
      dayEnd = end
    }
    spentUSD += ratePerHour * now.timeIntervalSince(from) / 3600
    lastAccrual = now
    // Most ticks cross no day and no threshold: appending even an empty array to an empty one
    // allocates, and this runs every tick.
    guard !events.isEmpty else { return thresholdEvents(breaker) }
    events += thresholdEvents(breaker)
    return events
  }

  private mutating func thresholdEvents(_ breaker: CostCircuitBreaker) -> [Event] {
    var events: [Event] = []
    let limit = breaker.dailyBudgetUSD
    if state == .ok && spentUSD >= breaker.alertThreshold * limit {
      state = .alert
      events.append(.alert(spent: spentUSD, limit: limit))
    }
    if state != .frozen && spentUSD >= breaker.actionThreshold * limit {
      if state == .ok { events.append(.alert(spent: spentUSD, limit: limit)) }
      state = .frozen
      events.append(.freeze(spent: spentUSD, limit: limit))
    }
    return events
  }

  /// The budget day that holds `date`: from its start of day to the next day's. The next
  /// day's start is found as the start of the day 30 hours on, never as the start plus a
  /// calendar day: where clocks skip midnight (America/Santiago on 2023-09-03 goes from 00:00
  /// to 01:00) a day starts at 01:00, and a day added to that is an hour late.
  static func day(containing date: Date, in timeZone: TimeZone) -> (start: Date, end: Date) {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = timeZone
    let start = calendar.startOfDay(for: date)
    // A day is 23 to 25 hours long, so 30 hours after its start always falls in the next one.
    let end = calendar.startOfDay(for: start.addingTimeInterval(30 * 3600))
    return (start, end)
  }
}
