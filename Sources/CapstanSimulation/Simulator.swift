import CapstanCore
import CapstanReplay
import Foundation

/// Closed-loop what-if: the policy's own engine (the one `run` and `replay` drive) decides on
/// signals measured from simulated fleets fed by request traces, on a virtual clock, and its
/// actions change those fleets. Deterministic: the same inputs give the same result.
public struct Simulator: Sendable {
  public let policy: Policy
  /// Per process: its trace.
  public let traces: [String: Trace]
  /// How every run begins.
  public var start: Start
  /// Where set, each run also scores its SLO window by window, this long each from the first
  /// arrival: `ProcessResult.worstWindowAttainment`.
  public var window: TimeInterval?
  /// Whether runs keep their latencies for percentiles; the oracle's search and `tune`'s
  /// candidates, each scored by its cost and its share inside the SLO alone, run without.
  public var latencies = true

  /// How a run begins.
  public enum Start: String, Sendable, CaseIterable {
    /// With the replicas the oracle runs at its first tick, ready (within each run's min and
    /// max): a trace that starts under load scores the policy, not one cold start.
    case oracle
    /// At each run's `min`, as a fresh deployment does.
    case min
  }

  public init(policy: Policy, traces: [String: Trace], start: Start = .min) throws(SimulationError) {
    self.policy = policy
    self.traces = traces
    self.start = start
    for name in traces.keys {
      guard let target = policy.simulatedProcess(named: name) else {
        throw .unknownProcess(
          name,
          known: policy.targets.filter { $0.variant == nil }.map(\.name)
            + policy.variantGroups.map(\.process.name))
      }
      guard let settings = target.simulation else { throw .noSimulationSection(name) }
      let read = target.proposalSignalNames + [target.predictive?.signal].compactMap { $0 }
      for signal in read where settings.signals[signal] == nil && settings.variantSignals[signal] == nil {
        throw .unmappedSignal(process: name, signal: signal)
      }
      if traces[name]?.kind == .llm
        && (settings.prefillTokensPerSecond == nil
          || settings.decodeTokensPerSecond == nil && settings.itl == nil)
      {
        throw .noTokenRates(name)
      }
      if traces[name]?.kind == .jobs && settings.slo.latency == .ttft { throw .ttftForJobs(name) }
    }
    var owners: [String: Int] = [:]
    for name in traces.keys {
      guard let settings = policy.simulatedProcess(named: name)?.simulation else { continue }
      for signal in Array(settings.signals.keys) + Array(settings.variantSignals.keys) {
        owners[signal, default: 0] += 1
      }
    }
    if let shared = owners.first(where: { $0.value > 1 })?.key { throw .sharedSignal(shared) }
  }

  /// How long past the last arrival the run goes on for work still queued; what is still
  /// waiting then counts as failed.
  public static let tail: TimeInterval = 3600

  /// Runs every traced process from the first request until one tick past the last arrival
  /// finds every fleet idle (or `tail` has passed).
  /// - Parameter baseline: nil runs the policy; otherwise a baseline on the same traces and
  ///   fleets. Only the policy's run (and the HPA's and KEDA's, as derived policies) writes
  ///   audit events; the schedules have no engine.
  /// - Parameter yardstick: the oracle's schedules and the static pools, found once by
  ///   `yardstick()` and shared by every run; nil finds them where the run needs them (the
  ///   oracle, static, or a warm start).
  /// - Parameter report: given, sees every tick's replicas (and for an engine, its signals and
  ///   state) under the run's name, for the HTML report.
  /// - Throws: a trace's read error (a file changed since it was loaded), or `onEvent`'s.
  public func run(
    _ baseline: Baseline? = nil, yardstick: Yardstick? = nil, report: ReportRecorder? = nil,
    onEvent: (AuditEvent) throws -> Void = { _ in }
  ) throws
    -> SimulationResult
  {
    var yardstick = yardstick
    if yardstick == nil && (start == .oracle || baseline == .oracle || baseline == .staticPool) {
      yardstick = try self.yardstick()
    }
    var starts: [String: Int] = [:]
    if start == .oracle, let yardstick {
      for (name, schedule) in yardstick.oracle { starts[name] = schedule.first }
    }
    let driver: Driver
    switch baseline {
    case nil: driver = .engine(policy)
    case .hpa?: driver = .engine(Baseline.hpa(policy))
    case .keda?: driver = .engine(Baseline.keda(policy))
    case .zeroWait?: driver = .schedule(try zeroWait())
    case .oracle?:
      let schedules = yardstick?.oracle ?? [:]
      driver = .schedule { name, tick in
        guard let schedule = schedules[name], tick < schedule.count else { return 0 }
        return schedule[tick]
      }
    case .staticPool?:
      let pools = yardstick?.staticPool ?? [:]
      driver = .schedule { name, _ in pools[name] ?? 0 }
      // A fixed pool is there from the start.
      if start == .oracle { starts = pools }
    }
    let name = baseline?.rawValue ?? "policy"
    return try run(driver, name: name, start: starts, report: report, onEvent: onEvent)
  }

  /// What decides at each tick.
  enum Driver {
    /// The engine, on this policy (the policy itself, or a baseline derived from it).
    case engine(Policy)
    /// A fixed schedule: replicas per process and tick number (from 0), bound by min and max.
    case schedule((String, Int) throws -> Int)
  }

  /// The zero-wait schedule of every traced process, read a startup ahead of the run: replicas
  /// by process and tick, asked for in tick order.
  func zeroWait() throws -> (String, Int) throws -> Int {
    var schedules: [String: ZeroWaitSchedule] = [:]
    for (name, trace) in traces {
      guard let settings = policy.simulatedProcess(named: name)?.simulation else { continue }
      schedules[name] = try ZeroWaitSchedule(
        settings: settings, interval: policy.controller.interval, trace: trace)
    }
    // A process with variants asks for steps of its smallest variant's capacity.
    let steps = Dictionary(
      traces.keys.compactMap { name in kinds(of: name).map { (name, Self.step(of: $0)) } },
      uniquingKeysWith: { a, _ in a })
    return { name, tick in
      let units = try schedules[name]?.replicas(atTick: tick) ?? 0
      guard let step = steps[name] else { return units }
      return Int(saturating: (Double(units) / step - 1e-9).rounded(.up))
    }
  }

  /// When a run may stop early, its verdict known: a single process's run that has missed more
  /// requests than the SLO allows, or has spent what a cheaper schedule costs.
  struct GiveUp {
    var misses: Int
    /// In the fleet's `cost`: replica-seconds, or for variants dollar-seconds an hour.
    var cost: Double
  }

  /// Runs the driver over every traced fleet.
  /// - Parameter start: replicas ready at the start, per process (the rest start at `min`).
  /// - Parameter giveUp: where given, the run stops at the first tick that settles its verdict,
  ///   and its result says it was `cutShort`.
  func run(
    _ driver: Driver, name: String, start: [String: Int] = [:], giveUp: GiveUp? = nil,
    report: ReportRecorder? = nil, onEvent: (AuditEvent) throws -> Void
  ) throws -> SimulationResult {
    let driven: Policy
    if case .engine(let derived) = driver { driven = derived } else { driven = policy }
    let interval = driven.controller.interval
    let engine = ScalingEngine(policy: driven)
    var state = EngineState()
    // In policy order, mutated by index, so no tick copies a fleet.
    var fleets: [Fleet] = []
    var actions: [ActionTally] = []
    // Per fleet, per kind, its target's place in the policy (and in the engine's inputs).
    var targetIndex: [[Int]] = []
    let windowMinutes = window.map { Int(saturating: ($0 / 60).rounded(.up)) }
    for (index, target) in driven.targets.enumerated() {
      if let membership = target.variant {
        // A process with variants is one fleet, made at its first variant in policy order.
        guard let group = driven.variantGroup(named: membership.group),
          let trace = traces[group.process.name],
          let settings = group.process.simulation,
          !fleets.contains(where: { $0.target.name == group.process.name })
        else { continue }
        let kinds = Self.kinds(of: group, in: driven)
        // A start a schedule gives counts steps of the smallest variant; otherwise, min.
        let step = Self.step(of: kinds)
        let capacity = start[group.process.name].map { Double($0) * step } ?? Double(group.process.min)
        let bounded = min(max(capacity, Double(group.process.min)), Double(group.process.max))
        fleets.append(
          try Fleet(
            target: group.process, kinds: kinds, settings: settings, trace: trace, interval: interval,
            start: Self.mix(bounded, of: kinds, in: driven), windowMinutes: windowMinutes,
            latencies: latencies))
        targetIndex.append(
          kinds.map { kind in driven.targets.firstIndex { $0.name == kind.target.name } ?? index })
        actions.append(ActionTally())
        continue
      }
      guard let trace = traces[target.name], let settings = target.simulation else { continue }
      let replicas = min(max(start[target.name] ?? target.min, target.min), target.max)
      fleets.append(
        try Fleet(
          target: target, settings: settings, trace: trace, interval: interval, start: [replicas],
          windowMinutes: windowMinutes, latencies: latencies))
      targetIndex.append([index])
      actions.append(ActionTally())
    }
    let origin = traces.values.map(\.start).min() ?? Date(timeIntervalSince1970: 0)
    // The engine's inputs by position, updated in place every tick: no dictionary of names is
    // built or hashed per tick. A fleet measures only what the engine reads, each at its place.
    let probes: [[(position: Int, quantity: SimulationSettings.Quantity, kind: Int?)]] = fleets.map { fleet in
      let whole = fleet.settings.signals.compactMap { name, quantity in
        engine.position(ofSignal: name).map { ($0, quantity, Int?.none) }
      }
      let perKind = fleet.settings.variantSignals.compactMap { name, measured in
        engine.position(ofSignal: name).flatMap { position in
          fleet.kinds.firstIndex { $0.target.variant?.variant == measured.variant }.map {
            (position, measured.quantity, Int?.some($0))
          }
        }
      }
      return (whole + perKind).sorted { $0.0 < $1.0 }.map { (position: $0.0, quantity: $0.1, kind: $0.2) }
    }
    var inputs = engine.emptyInputs()
    // Each fleet's measurements by tick, for a scrape lag: (time, values by position).
    var measured: [[(time: Double, values: [(position: Int, value: Double)])]] = Array(
      repeating: [], count: fleets.count)
    let byName = fleets.indices.sorted { fleets[$0].target.name < fleets[$1].target.name }
    var tick = 0
    var now = 0.0
    var cutShort = false
    while true {
      now = Double(tick) * interval
      for position in inputs.signals.indices { inputs.signals[position] = nil }
      for index in fleets.indices {
        try fleets[index].advance(to: now)
        for (kind, position) in targetIndex[index].enumerated() {
          inputs.replicas[position] = fleets[index].status(kind)
        }
        var values: [(position: Int, value: Double)] = []
        for probe in probes[index] {
          if let value = fleets[index].measure(probe.quantity, kind: probe.kind) {
            values.append((probe.position, value))
          }
        }
        measured[index].append((now, values))
        // What a scraper `scrapeLag` behind sees: the latest measurement at least that old.
        let lag = fleets[index].settings.scrapeLag
        while measured[index].count > 1 && measured[index][1].time <= now - lag {
          measured[index].removeFirst()
        }
        if let seen = measured[index].first, seen.time <= now - lag {
          for (position, value) in seen.values { inputs.signals[position] = value }
        }
      }
      var decided: [ScaleAction] = []
      switch driver {
      case .engine:
        let (decision, next) = engine.decide(
          inputs, state: consume state, now: origin.addingTimeInterval(now))
        state = next
        for event in decision.events { try onEvent(event) }
        decided = decision.actions
      case .schedule(let schedule):
        for index in byName {
          let target = fleets[index].target
          let asked = try schedule(target.name, tick)
          let kinds = fleets[index].kinds
          let counts: [Int]
          if kinds.count == 1 && kinds[0].target.variant == nil {
            counts = [min(max(asked, target.min), target.max)]
          } else {
            let bounds = Self.stepBounds(of: target, kinds: kinds)
            let steps = min(max(asked, bounds.min), bounds.max)
            counts = Self.mix(Double(steps) * Self.step(of: kinds), of: kinds, in: driven)
          }
          for (kind, count) in counts.enumerated() {
            let serving = fleets[index].serving(kind)
            guard count != serving else { continue }
            decided.append(
              ScaleAction(
                process: kinds[kind].target.name, from: serving, to: count, reason: .targetTracking,
                drainTimeout: kinds[kind].target.drainTimeout))
          }
        }
      }
      for action in decided {
        guard let index = fleets.firstIndex(where: { $0.kind(of: action.process) != nil }) else { continue }
        fleets[index].apply(action)
        actions[index].record(time: now, from: action.from, to: action.to)
      }
      if let report {
        var counts: [String: Int] = [:]
        for fleet in fleets {
          for (kind, of) in fleet.kinds.enumerated() { counts[of.target.name] = fleet.status(kind).current }
        }
        var engineState: EngineState?
        if case .engine = driver { engineState = state }
        var signals: [String: Double] = [:]
        for (position, value) in inputs.signals.enumerated() { signals[engine.signalOrder[position]] = value }
        report.tick(
          run: name, time: origin.addingTimeInterval(now), replicas: counts, signals: signals,
          state: engineState)
        for fleet in fleets {
          report.load(
            run: name, time: origin.addingTimeInterval(now), process: fleet.target.name,
            arrivals: fleet.measure(.requestRate) ?? 0, queue: fleet.measure(.queueDepth) ?? 0,
            latency: fleet.measure(.latencyP95),
            slo: (fleet.settings.slo.latency.rawValue, fleet.settings.slo.bound))
        }
      }
      if let giveUp,
        fleets.contains(where: {
          $0.tally.misses > giveUp.misses || $0.cost >= giveUp.cost
        })
      {
        cutShort = true
        break
      }
      tick += 1
      // Until a trace runs out its last arrival is ahead; an empty trace does not hold the run.
      var lastArrival = 0.0
      for fleet in fleets {
        if !fleet.exhausted {
          lastArrival = .infinity
        } else if let last = fleet.lastArrival {
          lastArrival = max(lastArrival, last)
        }
      }
      let idle = fleets.allSatisfy(\.idle)
      if now >= lastArrival + interval && idle || now >= lastArrival + Self.tail { break }
    }
    var results: [ProcessResult] = []
    for index in fleets.indices {
      fleets[index].close()
      results.append(ProcessResult(fleet: fleets[index], actions: actions[index], run: name, seconds: now))
    }
    var result = SimulationResult(processes: results, ticks: tick, seconds: now, start: self.start)
    result.cutShort = cutShort
    return result
  }
}

/// A run's scale actions, counted as they happen: how many, and how many reversed the one before
/// within 5 minutes.
struct ActionTally {
  private(set) var count = 0
  private(set) var reversals = 0
  private var last: (time: Double, up: Bool)?

  mutating func record(time: Double, from: Int, to: Int) {
    count += 1
    let up = to > from
    if let last, time - last.time <= 300, last.up != up { reversals += 1 }
    last = (time, up)
  }
}

public enum SimulationError: Error, CustomStringConvertible, Equatable {
  case unknownProcess(String, known: [String])
  case noSimulationSection(String)
  case unmappedSignal(process: String, signal: String)
  case noTokenRates(String)
  case ttftForJobs(String)
  case sharedSignal(String)

  /// Where in the policy file the mistake is, where it is in one: the process's simulation
  /// section, or the process.
  public func location(in policy: Policy) -> FileLocation? {
    switch self {
    case .unknownProcess: nil
    case .noSimulationSection(let name): policy.target(named: name)?.location
    case .unmappedSignal(let name, _), .noTokenRates(let name), .ttftForJobs(let name):
      policy.target(named: name).flatMap { $0.simulation?.location ?? $0.location }
    case .sharedSignal(let signal): policy.signals.first { $0.name == signal }?.location
    }
  }

  public var description: String {
    switch self {
    case .unknownProcess(let name, let known):
      "--trace names '\(name)', which the policy does not scale (it scales: \(known.joined(separator: ", ")))"
    case .noSimulationSection(let name):
      "process '\(name)' has a trace but no simulation section: add processes.\(name).simulation with slots, the service rates, startup, signals and slo"
    case .unmappedSignal(let process, let signal):
      "processes.\(process).simulation.signals says nothing of '\(signal)', which the policy reads: map it to one of \(SimulationSettings.Quantity.allCases.map(\.rawValue).joined(separator: ", "))"
    case .noTokenRates(let name):
      "process '\(name)' has an LLM trace: give processes.\(name).simulation prefill_tokens_per_second, and decode_tokens_per_second or an itl step law"
    case .ttftForJobs(let name):
      "process '\(name)' has a jobs trace, which has no first token: use slo.latency e2e or queue_wait"
    case .sharedSignal(let signal):
      "signal '\(signal)' is fed by two simulated processes: give each process its own signal"
    }
  }
}
