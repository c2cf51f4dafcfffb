import Foundation

/// The replicas a backend reports for one process.
public struct ReplicaStatus: Sendable, Equatable {
  public var current: Int
  /// Running and ready for work; utilization targets divide by this.
  public var ready: Int
  /// Removed but still finishing their work, not counted in `current`. They still hold their
  /// GPUs, cost and provider share, so they count against max and the ceilings until gone.
  public var draining: Int

  public init(current: Int, ready: Int, draining: Int = 0) {
    self.current = current
    self.ready = ready
    self.draining = draining
  }

  public init(_ count: Int) { self.init(current: count, ready: count) }

  /// The ready replicas counted against the current count: a backend may report more ready
  /// than it now runs (a scale-down still settling), and utilization is measured over these.
  public var readyWithinCurrent: Int { min(ready, current) }
}

/// What one tick observed.
public struct EngineInputs: Sendable, Equatable {
  /// Signal values; a signal absent here is missing at this tick.
  public var signals: [String: Double]
  /// Per target; a target absent here is not decided at this tick.
  public var replicas: [String: ReplicaStatus]

  public init(signals: [String: Double], replicas: [String: ReplicaStatus]) {
    self.signals = signals
    self.replicas = replicas
  }
}

/// A change for a driver to carry out.
public struct ScaleAction: Sendable, Equatable {
  public var process: String
  public var from: Int
  public var to: Int
  public var reason: ScaleReason
  /// How long a removed replica may take to finish before it is killed.
  public var drainTimeout: TimeInterval
  /// The audit record's sentence, for backends that tell their own users why (Kubernetes Events).
  public var detail: String

  public init(
    process: String, from: Int, to: Int, reason: ScaleReason, drainTimeout: TimeInterval, detail: String = ""
  ) {
    self.process = process
    self.from = from
    self.to = to
    self.reason = reason
    self.drainTimeout = drainTimeout
    self.detail = detail
  }
}

public struct TickDecision: Sendable, Equatable {
  public var actions: [ScaleAction] = []
  public var events: [AuditEvent] = []

  public init() {}
}

/// Everything the engine remembers between ticks. Codable so the live controller can keep it
/// across restarts.
public struct EngineState: Sendable, Equatable, Codable {
  public var targets = ProcessTable<TargetState>()
  public var budgets = ProcessTable<BudgetLedger>()
  /// Signals missing at the last tick, so outages are reported when they start and end.
  public var missingSignals: Set<String> = []
  public var lastTick: Date?
  /// Per predictive target, the history it learned and its profile.
  public var forecasts: [String: ForecastState] = [:]
  /// Per budget of `budgets:`, its day.
  public var budgetTree: [String: BudgetDayLedger] = [:]

  public init() {}

  enum CodingKeys: String, CodingKey {
    case targets, budgets, missingSignals, lastTick, forecasts, budgetTree
  }

  /// A state saved before forecasts existed reads with none.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    targets = try container.decode(ProcessTable<TargetState>.self, forKey: .targets)
    budgets = try container.decode(ProcessTable<BudgetLedger>.self, forKey: .budgets)
    missingSignals = try container.decode(Set<String>.self, forKey: .missingSignals)
    lastTick = try container.decodeIfPresent(Date.self, forKey: .lastTick)
    forecasts = try container.decodeIfPresent([String: ForecastState].self, forKey: .forecasts) ?? [:]
    budgetTree = try container.decodeIfPresent([String: BudgetDayLedger].self, forKey: .budgetTree) ?? [:]
  }
}

public struct TargetState: Sendable, Equatable, Codable {
  /// A count recommended at every tick from `time` to `until`: one entry a run of the same
  /// count rather than one a tick, so the saved state does not grow with the window.
  public struct Recommendation: Sendable, Equatable, Codable {
    public var time: Date
    public var replicas: Int
    /// The latest tick that recommended it; nil: only `time` did (and state saved before runs).
    public var until: Date?

    /// The latest time it was recommended, which decides whether a window still holds it.
    public var latest: Date { until ?? time }
  }

  public struct BlockedMark: Sendable, Equatable, Codable {
    public var reason: ScaleReason
    public var wanted: Int
  }

  /// Recent bounded recommendations, for the stabilization windows.
  public var recommendations: [Recommendation] = []
  public var lastScaleUp: Date?
  public var lastScaleDown: Date?
  /// Since when a rule's conditions have held without a break (for `duration`).
  public var scaleUpHoldingSince: Date?
  public var scaleDownHoldingSince: Date?
  /// The latest tick's block; nil where it had none. `capstan status` and `capstan_held`
  /// report it as what limits the process.
  public var lastBlocked: BlockedMark?
  /// The blocks written since the count last moved, the latest last: a block is written once
  /// until the count moves, however the wanted counts alternate. At most `blocksRemembered`.
  public var blocksWritten: [BlockedMark]?
  static let blocksRemembered = 8

  /// Notes this tick's block (nil: none), and whether it is one to write: one not written since
  /// the count last moved. A block that goes on across a move (a step at a time toward the same
  /// count) is not written again.
  mutating func noteBlock(_ mark: BlockedMark?, moved: Bool) -> Bool {
    if moved { blocksWritten = nil }
    let previous = lastBlocked
    lastBlocked = mark
    guard let mark else { return false }
    var written = blocksWritten ?? []
    guard !written.contains(mark) else { return false }
    written.append(mark)
    blocksWritten = Array(written.suffix(Self.blocksRemembered))
    return !(moved && previous == mark)
  }
  /// The count the engine last saw or set. A backend reporting another count means someone
  /// else scaled the target (a person, a deploy), which is reported and then adopted.
  public var lastReplicas: Int?
  /// After a restart whose backend's replicas stopped with the controller (the local
  /// supervisor): the count that ran before, restored at once as a floor, like `min`, over
  /// cooldowns and windows, until it is reached.
  public var restoreTo: Int?
  /// For a process scaled on its SLOs, what it has learned; for a variant that learns its
  /// capacity, what it has learned of its own replicas; nil for any other.
  public var slo: SLOState?
  /// For a variant that learns its capacity, the learned capacity in use; nil while its
  /// declared one is.
  public var learnedCapacity: Double?

  public init() {}
}

extension EngineState {
  /// What in a saved state is out of range, so a damaged or hand-edited file is refused with a
  /// reason instead of holding the pool (a scale-up time in the year 3000 would keep the
  /// cooldown forever) or stopping the process. Empty when it is sound.
  public func problems(now: Date) -> [String] {
    var found: [String] = []
    let latest = now.addingTimeInterval(86_400)
    func check(_ date: Date?, _ what: String) {
      guard let date else { return }
      let seconds = date.timeIntervalSince1970
      if !seconds.isFinite || seconds < 0 || date > latest {
        found.append("\(what) is \(seconds) seconds since 1970, not a time before tomorrow")
      }
    }
    func check(_ count: Int?, _ what: String) {
      if let count, count < 0 || count > PolicyLimits.maxCount {
        found.append("\(what) is \(count), not a replica count from 0 to \(PolicyLimits.maxCount)")
      }
    }
    check(lastTick, "lastTick")
    for (name, target) in targets.sorted(by: { $0.key < $1.key }) {
      check(target.lastScaleUp, "\(name).lastScaleUp")
      check(target.lastScaleDown, "\(name).lastScaleDown")
      check(target.scaleUpHoldingSince, "\(name).scaleUpHoldingSince")
      check(target.scaleDownHoldingSince, "\(name).scaleDownHoldingSince")
      check(target.lastReplicas, "\(name).lastReplicas")
      check(target.restoreTo, "\(name).restoreTo")
      if let written = target.blocksWritten, written.count > TargetState.blocksRemembered {
        found.append(
          "\(name).blocksWritten holds \(written.count) blocks, more than the \(TargetState.blocksRemembered) kept"
        )
      }
      if let slo = target.slo, !slo.isSound {
        found.append("\(name).slo holds a model or trend that is not finite numbers in range")
      }
      if let capacity = target.learnedCapacity,
        !capacity.isFinite || capacity <= 0 || capacity > PolicyLimits.maxMagnitude
      {
        found.append("\(name).learnedCapacity is \(capacity), not a capacity above 0 up to 1e15")
      }
      for recommendation in target.recommendations {
        check(recommendation.time, "\(name).recommendations.time")
        check(recommendation.until, "\(name).recommendations.until")
        check(recommendation.replicas, "\(name).recommendations.replicas")
      }
    }
    for (name, ledger) in budgets.sorted(by: { $0.key < $1.key }) {
      if !ledger.spentUSD.isFinite || ledger.spentUSD < 0 || ledger.spentUSD > PolicyLimits.maxMagnitude {
        found.append("\(name).spentUSD is \(ledger.spentUSD), not an amount from 0 to 1e15")
      }
      if let rate = ledger.lastCostRate, !rate.isFinite || rate < 0 || rate > PolicyLimits.maxMagnitude {
        found.append("\(name).lastCostRate is \(rate), not a rate from 0 to 1e15")
      }
      check(ledger.lastAccrual, "\(name).lastAccrual")
      check(ledger.dayStart, "\(name).dayStart")
      // A budget day ends after it starts, 23 to 25 hours later, and within two days of now: a
      // day that ended long ago would write a reset per day missed, and one far ahead would
      // keep a frozen budget frozen for good.
      if let start = ledger.dayStart, let end = ledger.dayEnd {
        let length = end.timeIntervalSince(start)
        if !length.isFinite || length < 22 * 3600 || length > 26 * 3600
          || end > now.addingTimeInterval(2 * 86_400)
        {
          found.append(
            "\(name).dayEnd is \(end.timeIntervalSince1970) seconds since 1970, not the end of the budget day that starts at \(start.timeIntervalSince1970)"
          )
        }
      } else if ledger.dayStart != nil || ledger.dayEnd != nil {
        found.append("\(name) has a budget day's start or end without the other")
      }
    }
    for (name, forecast) in forecasts.sorted(by: { $0.key < $1.key }) {
      check(forecast.builtAt, "\(name).builtAt")
      check(forecast.history.newest, "\(name).history.newest")
      // A period index counts days or weeks since 1970 (the shape starts with the period's
      // seconds); one after today's would make every new value look too old to keep.
      let period = forecast.shape.flatMap { Double($0.prefix { $0 != "/" }) } ?? 86_400
      if let newest = forecast.history.periods.last?.index,
        Double(newest) * period > now.timeIntervalSince1970 + 2 * 86_400
      {
        found.append("\(name).history has period \(newest), which is after today's")
      }
      if !forecast.history.isSound || !LoadHistory.areLoads(forecast.profile ?? []) {
        found.append(
          "\(name).history or .profile holds a value that is not a load from 0 to 1e15, or periods out of order"
        )
      }
    }
    return found
  }
}
