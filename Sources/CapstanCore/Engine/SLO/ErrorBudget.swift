import Foundation

/// An objective's error budget over a rolling period: the requests served and those outside the
/// bound, counted from the load and the measured share within the bound, in slots that age out
/// of the period. An SLO is judged over a period ("99% of a day's first tokens within 2 s"), so
/// a process whose budget is unspent may size for a looser percentile now, and one that has
/// overspent it sizes tighter and keeps replicas it would otherwise remove.
public struct ErrorBudget: Sendable, Equatable, Codable {
  /// Requests and misses counted in one slot of the period.
  public struct Slot: Sendable, Equatable, Codable {
    public var start: Date
    public var requests: Double
    public var missed: Double
  }

  /// Oldest first; none older than the period.
  public private(set) var slots: [Slot] = []
  /// The last tick counted, for the time each tick covers.
  public private(set) var last: Date?

  /// A period is kept as this many slots: a day's in slots of 15 minutes.
  static let slotsPerPeriod = 96.0
  /// The budget steers sizing only once it allows this many misses: before then, one unlucky
  /// minute would read as the whole budget spent.
  static let minimumAllowed = 10.0
  /// The per-tick percentile the sizing aims at is the objective's, with its share of misses
  /// multiplied by up to this (half the budget or more left) or divided by up to this (half or
  /// more overspent): p95 to p99.8 for an objective of p99.
  static let steering = 5.0
  /// The budget left at which the aim reaches its loosest. Steering by the whole budget would
  /// spend it only once it stood nearly unspent: the sizing, with its headroom, misses less than
  /// it aims at, and the budget would end the period mostly unspent. Steering by a quarter of it
  /// spends it early: the share missed by load, aiming at p95 until three quarters are gone,
  /// runs a bursty pool thin into its busiest hours.
  static let fullLeft = 0.5

  /// With this share of its budget or more left, a measured latency above the bound adds no
  /// replica: the minute's misses are spent from the budget, and the correction returns once
  /// they have spent half of it.
  static let spendAbove = 0.5

  public init() {}

  /// Counts the requests since the last tick (at most `longest` seconds of them: a controller
  /// that was down saw nothing) and the share of them outside the bound.
  mutating func add(load: Double?, within: Double?, at now: Date, period: TimeInterval, longest: TimeInterval)
  {
    defer { last = now }
    guard let previous = last, now > previous else { return }
    guard let load, let within, load.isFinite, within.isFinite, load >= 0, load <= PolicyLimits.maxMagnitude
    else { return }
    let requests = load * min(now.timeIntervalSince(previous), longest)
    let missed = requests * (1 - min(max(within, 0), 1))
    let length = period / Self.slotsPerPeriod
    if let open = slots.last, now.timeIntervalSince(open.start) < length {
      slots[slots.count - 1].requests += requests
      slots[slots.count - 1].missed += missed
    } else {
      slots.append(Slot(start: now, requests: requests, missed: missed))
    }
    let oldest = now.addingTimeInterval(-period)
    if let keep = slots.firstIndex(where: { $0.start > oldest }), keep > 0 { slots.removeFirst(keep) }
  }

  public var requests: Double { slots.reduce(0) { $0 + $1.requests } }
  public var missed: Double { slots.reduce(0) { $0 + $1.missed } }

  /// Where the budget stands for an objective of `percentile` at `now`; nil until an hour of
  /// the period is counted, or while it allows fewer than `minimumAllowed` misses. Until a whole
  /// period is counted, the budget is the period's, with its requests expected at the rate seen
  /// so far: a miss in the first hour of a day spends a share of the day's budget, not of the
  /// hour's.
  public func standing(percentile: Double, period: TimeInterval, at now: Date) -> Standing? {
    guard let first = slots.first else { return nil }
    let counted = min(now.timeIntervalSince(first.start), period)
    guard counted >= Self.shortestCounted * period / Self.slotsPerPeriod, counted > 0 else { return nil }
    let requests = requests
    let missed = missed
    let allowed = requests * period / counted * (1 - percentile / 100)
    guard allowed >= Self.minimumAllowed, requests > 0 else { return nil }
    let left = (allowed - missed) / allowed
    // The miss share to aim at: the objective's, times `steering` to the power of the budget
    // left over `fullLeft`, within ±1.
    let aimMisses = (1 - percentile / 100) * pow(Self.steering, min(max(left / Self.fullLeft, -1), 1))
    return Standing(share: 1 - missed / requests, counted: counted, left: left, aim: 100 - 100 * aimMisses)
  }

  /// Slots counted before the budget steers: an hour of a day.
  static let shortestCounted = 4.0

  /// Where an objective's budget stands.
  public struct Standing: Sendable, Equatable {
    /// The share of the requests counted within the bound, 0 to 1.
    public var share: Double
    /// Seconds counted: the period, once a whole one has passed.
    public var counted: TimeInterval
    /// The share of the budget left: 1 unspent, 0 spent, below 0 overspent.
    public var left: Double
    /// The percentile the sizing aims at this tick.
    public var aim: Double
  }

  /// A period lengthened by a reload keeps the shorter slots already counted until they age out.
  var isSound: Bool {
    slots.count <= 4 * Int(Self.slotsPerPeriod)
      && slots.allSatisfy {
        $0.requests.isFinite && $0.missed.isFinite && $0.requests >= 0 && $0.missed >= 0
          && $0.missed <= $0.requests + 1e-9
      }
  }
}

extension SLOSizer {
  /// While an objective's budget is overspent, no replica is removed within this long of a
  /// measured latency above its bound: twice the scale-down stabilization an interactive process
  /// has by default, which is sized for a pool with its budget in hand. A pool short in bursts is
  /// short again in the next one, and a replica removed now is minutes from serving it.
  static let overspentHold: TimeInterval = 600

  /// Counts this tick's requests and misses into each error budget, and notes a latency above
  /// its bound.
  static func count(_ observation: SLOObservation, _ slo: SLOScaling, state: inout SLOState) {
    for (index, objective) in slo.objectives.enumerated() {
      if let value = observation.measured[index], value > objective.bound { state.aboveAt = observation.now }
      guard let period = objective.period, objective.within != nil else { continue }
      let within = index < observation.within.count ? observation.within[index] : nil
      var budgets = state.budgets ?? [:]
      budgets[objective.latency.rawValue, default: ErrorBudget()].add(
        load: observation.load, within: within, at: observation.now, period: period,
        longest: slo.measuredOver)
      state.budgets = budgets
    }
  }

  /// Each objective's budget where it keeps one, and the percentile the sizing aims at.
  static func standings(
    _ objectives: inout [SLOSizing.ObjectiveState], _ slo: SLOScaling, state: SLOState, now: Date
  ) {
    for index in objectives.indices {
      objectives[index].budget = state.budgetStanding(of: slo.objectives[index], at: now)
    }
  }

  /// Whether every objective above its bound has half its budget or more left: its minute's
  /// misses are what the budget is for.
  static func spends(_ objectives: [SLOSizing.ObjectiveState]) -> Bool {
    objectives.allSatisfy {
      ($0.measured ?? 0) <= $0.bound || ($0.budget?.left ?? 0) >= ErrorBudget.spendAbove
    }
  }

  /// Why a scale-down waits for an overspent budget: a latency above its bound within
  /// `overspentHold`; nil where none is overspent or none was above lately.
  static func overspent(_ sizing: SLOSizing, state: SLOState, now: Date) -> String? {
    guard let aboveAt = state.aboveAt, now.timeIntervalSince(aboveAt) < overspentHold,
      let objective = sizing.objectives.first(where: { ($0.budget?.left ?? 1) < 0 }),
      let budget = objective.budget
    else { return nil }
    let ago = Int(now.timeIntervalSince(aboveAt) / 60)
    return
      "\(objective.latency.rawValue)'s error budget is overspent (\(ErrorBudget.percentText(budget.share)) within \(milliseconds(objective.bound))) and a latency was above its bound \(ago == 0 ? "this minute" : "\(ago) min ago")"
  }

  /// A span counted, in hours to a tenth: 9.2h, 24h.
  static func hours(_ seconds: TimeInterval) -> String { "\(format((seconds / 360).rounded() / 10))h" }
}

extension SLOState {
  /// Where `objective`'s error budget stands at `now`; nil where it has no period or its budget
  /// does not steer yet.
  public func budgetStanding(of objective: SLOScaling.Objective, at now: Date) -> ErrorBudget.Standing? {
    guard let period = objective.period else { return nil }
    return budgets?[objective.latency.rawValue]?.standing(
      percentile: objective.percentile, period: period, at: now)
  }
}

extension ErrorBudget {
  /// A share as a percentage to two decimals: 99.37%.
  public static func percentText(_ share: Double) -> String { "\(hundredths(share * 100))%" }

  /// The percentile a tick is sized for, to two decimals: p96.84.
  public static func aimText(_ aim: Double) -> String { "p\(hundredths(aim))" }
}
