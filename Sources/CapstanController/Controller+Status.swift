import CapstanCore
import Foundation

// What the controller says of itself: `/status`, and how long its ticks take.

/// What the last tick saw, kept for `/status`.
struct TickView {
  var replicas: [String: ReplicaStatus] = [:]
  var signals: [String: Double] = [:]
  /// The count each process was set to at the last tick, where an action set one.
  var desired: [String: Int] = [:]
  /// Each process's last record written.
  var records: [String: AuditEvent] = [:]

  /// Each process with variants has its capacity kept beside its variants' replicas, under the
  /// process's name, in units.
  /// - Parameter learned: a variant's learned capacity, where it learns one and the engine
  ///   uses it.
  mutating func tick(
    replicas: [String: ReplicaStatus], signals: [String: Double], actions: [ScaleAction], policy: Policy,
    learned: (String) -> Double? = { _ in nil }
  ) {
    self.replicas = replicas
    self.signals = signals
    desired = Dictionary(actions.map { ($0.process, $0.to) }, uniquingKeysWith: { $1 })
    for group in policy.variantGroups {
      self.replicas[group.process.name] = group.capacity(of: replicas, in: policy, learned: learned)
      guard group.fillOrder.contains(where: { desired[$0] != nil }) else { continue }
      var after = replicas
      for name in group.fillOrder {
        if let to = desired[name] { after[name]?.current = to }
      }
      desired[group.process.name] = group.capacity(of: after, in: policy, learned: learned)?.current
    }
  }
}

/// When each part of a tick ended, in seconds from its start: what a slow tick spent its time
/// on, in the overrun warning and, at the debug level, for every tick.
struct TickPhases {
  let started = Date()
  private(set) var ends: [(phase: String, seconds: TimeInterval)] = []

  mutating func end(_ phase: String) { ends.append((phase, Date().timeIntervalSince(started))) }

  var seconds: TimeInterval { Date().timeIntervalSince(started) }

  /// `signals 0.12 s, replicas 0.31 s, …`: each phase's end.
  var description: String {
    ends.map { "\($0.phase) \(Ceilings.format(($0.seconds * 1000).rounded() / 1000)) s" }.joined(
      separator: ", ")
  }
}

extension Controller {
  /// A tick's duration, as a metric; one longer than the interval makes every decision late,
  /// so it is counted and logged as a warning with what took the time to look for.
  func noteDuration(_ phases: TickPhases) {
    let seconds = phases.seconds
    metrics.tick(seconds: seconds)
    let interval = policy.controller.interval
    let rounded = Ceilings.format((seconds * 1000).rounded() / 1000)
    guard seconds > interval else {
      logger.debug("tick", metadata: ["seconds": "\(rounded)", "phases ended": "\(phases.description)"])
      return
    }
    metrics.tickOverrun()
    logger.warning(
      "a tick took longer than the interval: decisions come late",
      metadata: [
        "seconds": "\(rounded)",
        "interval": "\(Ceilings.format(interval))",
        "phases ended": "\(phases.description)",
        "hint":
          "a slow signal source (see each source's timeout) or backend; or lengthen controller.interval",
      ])
  }

  /// Where every process stands, from the last tick, the engine's state and the records.
  public func status(now: Date) -> ControllerStatus {
    let leading = isLeading(at: now)
    return ControllerStatus(
      lastTick: lastTick.map(RFC3339.string(from:)), leading: leading, problem: writeFailure,
      processes: policy.targets.map { processStatus($0, leading: leading, now: now) }
        + policy.variantGroups.map { processStatus($0.process, leading: leading, now: now) })
  }

  private func processStatus(_ target: ScalingTarget, leading: Bool, now: Date) -> ProcessStatus {
    let replicas = seen.replicas[target.name]
    let saved = state.engine.targets[target.name] ?? TargetState()
    let record = seen.records[target.name]

    let binding: ProcessStatus.Binding
    if let block = saved.lastBlocked {
      let said = record?.kind == .blocked && record?.reason == block.reason ? record : nil
      binding = .init(
        reason: block.reason.rawValue, wanted: block.wanted, event: said?.kind.rawValue, detail: said?.detail)
    } else if let record, record.kind == .scaleUp || record.kind == .scaleDown || record.kind == .blocked {
      binding = .init(reason: record.reason.rawValue, event: record.kind.rawValue, detail: record.detail)
    } else {
      binding = .init(reason: "none")
    }

    let signals = target.signalNames.map { name in
      ProcessStatus.Signal(
        name: name, value: seen.signals[name],
        target: target.tracking?.metric == name ? target.tracking?.target : nil)
    }
    let budget = target.budget.map { breaker in
      let ledger = state.engine.budgets[target.name]
      return ProcessStatus.Budget(
        spentUSD: ledger?.spentUSD ?? 0, dailyBudgetUSD: breaker.dailyBudgetUSD,
        state: (ledger?.state ?? .ok).rawValue)
    }

    var holds: [ProcessStatus.Hold] = []
    for (direction, last, kind) in [
      (ScaleDirection.up, saved.lastScaleUp, "scale_up_cooldown"),
      (.down, saved.lastScaleDown, "scale_down_cooldown"),
    ] {
      if let last, last.addingTimeInterval(target.rules(direction).cooldown) > now {
        holds.append(
          .init(
            kind: kind, until: RFC3339.string(from: last.addingTimeInterval(target.rules(direction).cooldown))
          ))
      }
    }
    // The scale-down window holds the highest count recommended within it above the latest.
    let window = target.down.stabilization
    let recent = saved.recommendations.filter { $0.latest > now.addingTimeInterval(-window) }
    if window > 0, let latest = recent.last, let held = recent.max(by: { $0.replicas < $1.replicas }),
      held.replicas > latest.replicas
    {
      holds.append(
        .init(
          kind: "scale_down_window", until: RFC3339.string(from: held.latest.addingTimeInterval(window)),
          replicas: held.replicas))
    }

    // A signal that no proposal reads (a budget's cost rate, an error budget's share, a
    // forecast's history) holds no scale-down while missing.
    let missing = target.signalNames.filter { seen.signals[$0] == nil }
    let vetoing = missing.filter { target.proposalSignalNames.contains($0) }
    var conditions: [ProcessStatus.Condition] = []
    if let problem = writeFailure {
      conditions.append(.init(type: "AbleToScale", status: false, reason: "NotActing", message: problem))
    } else if record?.kind == .blocked && record?.reason == .backendError {
      conditions.append(
        .init(type: "AbleToScale", status: false, reason: "BackendError", message: record?.detail ?? ""))
    } else if let hold = holds.first {
      conditions.append(
        .init(
          type: "AbleToScale", status: true,
          reason: hold.kind == "scale_down_window" ? "ScaleDownStabilized" : "Cooldown",
          message: "\(hold.kind.replacingOccurrences(of: "_", with: " ")) runs until \(hold.until)"))
    } else {
      conditions.append(
        .init(
          type: "AbleToScale", status: true, reason: "ReadyForNewScale",
          message: "the next decision can move it"))
    }
    if !leading {
      conditions.append(
        .init(
          type: "ScalingActive", status: false, reason: "NotLeading",
          message: "another replica leads and acts"))
    } else if !vetoing.isEmpty {
      conditions.append(
        .init(
          type: "ScalingActive", status: false, reason: "SignalMissing",
          message: "\(vetoing.joined(separator: ", ")) missing at the last tick: no scale-down on it"))
    } else if !missing.isEmpty {
      conditions.append(
        .init(
          type: "ScalingActive", status: true, reason: "ValidSignals",
          message:
            "every signal a decision reads was read at the last tick; \(missing.joined(separator: ", ")) missing, which holds no scale-down"
        ))
    } else {
      conditions.append(
        .init(
          type: "ScalingActive", status: true, reason: "ValidSignals",
          message: "every signal read at the last tick"))
    }
    // As the HPA's: limited by a bound on the count (max, min, a step, a ceiling, the budget,
    // the floor), not by a window or a cooldown, which AbleToScale reports.
    let limits: Set<ScaleReason> = [
      .maxInstances, .minInstances, .stepSize, .costCeiling, .rateLimitCeiling, .gpuPool, .budgetFrozen,
      .predictiveFloor, .shareUnpublished,
    ]
    if let block = saved.lastBlocked, limits.contains(block.reason) {
      conditions.append(
        .init(
          type: "ScalingLimited", status: true, reason: block.reason.rawValue,
          message: "wanted \(block.wanted), held by \(block.reason.rawValue)"))
    } else {
      conditions.append(
        .init(
          type: "ScalingLimited", status: false, reason: "DesiredWithinRange",
          message: "nothing holds the count"))
    }

    let standings = budgetStandings(target, at: now)
    return ProcessStatus(
      name: target.name, current: replicas?.current, desired: seen.desired[target.name] ?? replicas?.current,
      ready: replicas?.ready, min: target.min, max: target.max, binding: binding, signals: signals,
      budget: budget,
      holds: holds,
      predictive: target.predictive.map { _ in
        (state.engine.forecasts[target.name]?.condition ?? .noHistory).rawValue
      },
      errorBudgets: standings.isEmpty
        ? nil
        : standings.map {
          .init(
            latency: $0.objective.latency.rawValue, periodSeconds: $0.objective.period ?? 0,
            share: $0.standing.share, left: $0.standing.left, aim: $0.standing.aim)
        }, conditions: conditions)
  }

  /// Each SLO objective of `target` judged over a period, where its error budget steers.
  func budgetStandings(_ target: ScalingTarget, at now: Date) -> [(
    objective: SLOScaling.Objective, standing: ErrorBudget.Standing
  )] {
    guard let slo = target.slo, let learned = state.engine.targets[target.name]?.slo else { return [] }
    return slo.objectives.compactMap { objective in
      learned.budgetStanding(of: objective, at: now).map { (objective, $0) }
    }
  }
}
