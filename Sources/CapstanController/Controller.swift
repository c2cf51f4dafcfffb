import CapstanBackends
import CapstanCore
import CapstanKubernetes
import CapstanRuntime
import CapstanSignals
import Foundation
import Logging

/// What survives a restart: the engine's memory (windows, cooldowns, the budget and its freeze).
/// A backend keeps its own.
public struct ControllerState: Codable, Sendable {
  public var engine: EngineState

  public init(engine: EngineState = EngineState()) { self.engine = engine }
}

/// The live loop around the engine: read every signal, read the backend, decide, persist, write
/// the audit, act. The same `ScalingEngine` that replay drives.
public actor Controller {
  /// Builds the signal readers for a policy; tests give fakes.
  public typealias ReaderFactory = @Sendable (_ policy: Policy, _ baseDirectory: URL) -> [any SignalReader]

  public internal(set) var policy: Policy
  var engine: ScalingEngine
  let makeReaders: ReaderFactory
  var readers: [any SignalReader]
  var state: ControllerState
  let backend: any ScalingBackend
  private let audit: AuditLogFile
  private let store: StateStore<ControllerState>
  /// Writes the state file off the tick where it is not the durable copy (on Kubernetes).
  private let writer: BackgroundStateWriter?
  /// The days of the budgets of `budgets:`, in `STATE_DIR/budgets/`.
  let budgetFiles: BudgetFiles
  let metrics: ControllerMetrics
  private let mode: AuditMode
  var dryRun: Bool { mode == .dryRun }
  let baseDirectory: URL
  let logger: Logger
  /// Signals whose outage has been logged, so an outage is logged once, not every tick.
  private var failing: [String: String] = [:]
  /// With leader election: only while this says so does the controller act and write records.
  let leader: (any LeaderGate)?
  /// Targets whose backend warnings have been given (once per target per run).
  var warned: Set<String> = []
  /// Per target, by position in the policy, the replicas last exported, so a steady tick does
  /// not set ten thousand gauges to the values they hold.
  var exportedReplicas: [ExportedReplicas?] = []
  /// Per process with variants, the hold last exported.
  var exportedGroupHolds: [String: ScaleReason] = [:]
  public private(set) var lastTick: Date?
  /// Why the controller is not acting: the audit log or the state could not be written (no
  /// action is taken without both), or a rate-limit share could not be published (its
  /// provider's scale-ups are held). `/healthz` reports this until a tick succeeds again.
  public private(set) var writeFailure: String?
  /// Who holds the lease, as last seen; nil without leader election.
  public internal(set) var leaderIdentity: String?
  var wasLeading: Bool?

  /// With the Kubernetes backend: the state in the cluster, which outlives this pod.
  let shared: (any SharedStateStore)?
  /// Whether the shared state has been read since this controller last started leading.
  var adoptedShared = false
  /// The last document written to the shared store, so an unchanged state is not written again.
  var lastShared: Data?
  /// The document the last `persist` wrote (nil when it failed), which `saveShared`, right
  /// after it in a tick, sends as it is.
  var lastPersisted: Data?
  /// Per predictive process, when its history source was last read, and up to when a read
  /// last succeeded.
  var historyReadAt: [String: Date] = [:]
  var historyReadThrough: [String: Date] = [:]
  /// The processes whose history is being read, off the tick, and the reads that finished and
  /// are not yet handed to the engine.
  var historyInFlight: Set<String> = []
  var historyArrived: [String: HistoryRead] = [:]
  /// Each rate-limited process's share per replica, as last published (`/shares`, the files).
  public internal(set) var shares: [String: WorkerShare] = [:]
  /// The shares the backend last took (a Kubernetes annotation), retried apart from the files.
  var sharesInBackend: [String: WorkerShare] = [:]
  /// Where the share files go: `shares/` in the state directory.
  let sharesDirectory: URL
  /// What the last tick saw and decided, and each process's last record, for `/status`.
  var seen = TickView()

  /// How often a write that met a conflict is re-read, re-decided and tried again in one tick.
  static let conflictRetries = 3
  /// Actions carried out at once within a tick: each is a different process, and a fleet's
  /// tick should not wait on its writes one after another.
  static let concurrentActions = 8

  public init(
    policy: Policy, baseDirectory: URL, backend: any ScalingBackend, audit: AuditLogFile,
    store: StateStore<ControllerState>, state: ControllerState, mode: AuditMode, metrics: ControllerMetrics,
    logger: Logger, leader: (any LeaderGate)? = nil, shared: (any SharedStateStore)? = nil,
    makeReaders: @escaping ReaderFactory = Controller.readers(for:baseDirectory:)
  ) {
    self.leader = leader
    self.shared = shared
    self.policy = policy
    self.engine = ScalingEngine(policy: policy)
    self.makeReaders = makeReaders
    self.readers = makeReaders(policy, baseDirectory)
    self.baseDirectory = baseDirectory
    self.backend = backend
    self.audit = audit
    self.store = store
    self.writer = store.durable ? nil : BackgroundStateWriter { try store.save(encoded: $0) }
    self.sharesDirectory = store.directory.appendingPathComponent("shares")
    self.budgetFiles = BudgetFiles(directory: store.directory.appendingPathComponent("budgets"))
    self.state = state
    if !backend.replicasOutliveController {
      // The replicas that ran before stopped with the last controller: what it ran is restored
      // at once, and their absence is Capstan's own doing, not someone else's change.
      for (name, saved) in state.engine.targets {
        if let count = saved.lastReplicas, count > 0 { self.state.engine.targets[name]?.restoreTo = count }
        self.state.engine.targets[name]?.lastReplicas = nil
      }
    }
    self.mode = mode
    self.metrics = metrics
    self.logger = logger
    metrics.prepare(
      policy, budgets: self.state.engine.budgets, namedBudgets: self.state.engine.budgetTree,
      crashLoops: backend.countsCrashLoops)
    // Without leader election this Capstan always leads; with it, it follows until it wins.
    metrics.leader(leader == nil)
  }

  /// Problems that stop a policy from running live, as `FILE:LINE:COLUMN: error:` diagnostics:
  /// a signal with no source, a local process with no command.
  public static func runProblems(_ policy: Policy, file: String) -> [Diagnostic] {
    var problems: [Diagnostic] = []
    let top = FileLocation(file: file, line: 1, column: 1)
    for signal in policy.signals where signal.source == nil {
      problems.append(
        Diagnostic(
          .error, at: signal.location ?? top,
          "signal '\(signal.name)' has no source to read live: declare it under signals with directory: or command:"
        ))
    }
    if policy.backend == .local {
      for target in policy.targets where target.local == nil {
        problems.append(
          Diagnostic(
            .error, at: target.location ?? top,
            "'\(target.name)' has nothing to run: add local: {command: [PROGRAM, ARG...]} to the process, or choose another backend"
          ))
      }
    }
    return problems
  }

  @Sendable public static func readers(for policy: Policy, baseDirectory: URL) -> [any SignalReader] {
    SignalReaders.make(policy.signals, baseDirectory: baseDirectory)
  }

  // MARK: One tick

  public func tick(now: Date) async {
    var phases = TickPhases()
    let signals = await readSignals(now: now)
    phases.end("signals")
    var replicas: [String: ReplicaStatus] = [:]
    for target in policy.targets {
      do {
        replicas[target.name] = try await backend.status(of: target)
      } catch {
        logger.error(
          "cannot read replicas: not deciding this target this tick",
          metadata: ["process": "\(target.name)", "error": "\(error)"])
        metrics.backendError(target.name)
      }
    }
    phases.end("replicas")

    for target in policy.targets where replicas[target.name] != nil && !warned.contains(target.name) {
      warned.insert(target.name)
      for warning in await backend.warnings(for: target) {
        logger.warning("\(warning)", metadata: ["process": "\(target.name)"])
        let current = replicas[target.name]?.current
        record(.warning(process: target.name, replicas: current, detail: warning, at: now))
      }
    }

    // A controller that starts leading takes the state the last leader left in the cluster
    // (the day's spend, a freeze, cooldowns) before it decides anything.
    var problem: String?
    if shared != nil {
      if leader?.isLeading(at: Date()) ?? true {
        if !adoptedShared { problem = await adoptShared() }
      } else {
        adoptedShared = false
      }
    }

    await readHistory(now: now)
    phases.end("shared state and history")
    let before = state.engine
    let (decision, next) = engine.decide(
      EngineInputs(signals: signals, replicas: replicas), state: before, now: now)
    state.engine = next
    // Persist before acting: after a crash a cooldown is still counted and nothing is done twice.
    phases.end("decide")
    problem = problem ?? persist()
    phases.end("persist")
    // A follower decides too, so its windows, rule timers and budget are warm when it takes
    // over, but it acts on nothing and records nothing: the leader does both.
    // One that came to lead during this tick decided without the state the last leader left:
    // it acts from the next tick, once it has read it.
    let leaderNow = leader?.isLeading(at: Date()) ?? true
    let leading = leaderNow && (shared == nil || adoptedShared)
    if leading {
      if problem == nil { problem = await saveShared() }
      phases.end("save shared state")
      var toCarryOut = decision.actions
      var held: String?
      if problem == nil {
        // Before the records and the actions, so a replica started now reads the share of the
        // new count, and the ones already running lower theirs before the new ones send
        // anything; a share that cannot be published holds its provider's scale-ups.
        let unpublished = await publishShares(replicas: replicas, actions: decision.actions)
        let (actions, events, why) = holdScaleUps(
          unpublished: unpublished, decision: decision, before: before, now: now)
        (toCarryOut, held) = (actions, why)
        problem = record(events)
        // The held scale-ups were forgotten: saved so, or not acted on at all.
        if problem == nil, held != nil { problem = persist() }
      }
      phases.end("shares and records")
      if let problem {
        // Fail closed: no action without its record and the state that remembers it. The
        // engine forgets these decisions, so the next tick decides them again from what runs.
        for action in decision.actions {
          state.engine.forget(action.process, as: before, in: policy)
        }
        if !decision.actions.isEmpty {
          logger.critical(
            "not acting: \(problem)",
            metadata: ["actions": "\(decision.actions.map { "\($0.process) \($0.from)->\($0.to)" })"])
        }
        _ = persist()
      } else {
        await carryOutAll(toCarryOut, before: before, signals: signals, now: now)
        phases.end("actions")
      }
      writeFailure = problem ?? held
    } else {
      // What the leader actually set may differ from what this follower decided; forgetting its
      // own guess keeps a takeover from reporting the leader's last change as someone else's.
      // A follower writes no record, so it remembers none as written: a block it saw is
      // reported when it leads.
      for name in state.engine.targets.keys {
        state.engine.targets[name]?.lastReplicas = nil
        state.engine.targets[name]?.lastBlocked = nil
        state.engine.targets[name]?.blocksWritten = nil
      }
      persist()
      // Leading but unable to read the shared state is a reason not to act; following is not.
      writeFailure = leaderNow ? problem : nil
    }
    let engineState = state.engine
    seen.tick(
      replicas: replicas, signals: signals, actions: leading ? decision.actions : [], policy: policy,
      learned: { engineState.targets[$0]?.learnedCapacity })
    await exportMetrics(replicas: replicas, decision: leading ? decision : TickDecision(), now: now)
    exportBudgetTree()
    phases.end("metrics")
    lastTick = now
    noteDuration(phases)
    Self.returnTransientMemory()
  }

  /// Every signal at once, each bounded by its own timeout. A failure makes that signal missing
  /// for this tick; it is logged when an outage starts and when it ends. The series of one
  /// `series_label` signal come from one query: a failure of it is counted and logged once,
  /// against the signal as declared.
  private func readSignals(now: Date) async -> [String: Double] {
    let results = await SignalReaders.readAll(readers, now: now)
    var values: [String: Double] = [:]
    var failed = Set<String>()
    var told = Set<String>()
    for (name, result) in results.sorted(by: { $0.key < $1.key }) {
      let declared = engine.position(ofSignal: name).flatMap {
        $0 < policy.signals.count ? policy.signals[$0].declaredName : nil
      }
      switch result {
      case .success(let value):
        values[name] = value
        metrics.signal(name, value: value)
        if failing.removeValue(forKey: name) != nil, told.insert(declared ?? name).inserted {
          logger.notice("signal restored", metadata: ["signal": "\(declared ?? name)", "value": "\(value)"])
        }
      case .failure(let error):
        failed.insert(declared ?? name)
        let reason = "\(error)"
        if failing[name] == nil, told.insert(declared ?? name).inserted {
          logger.warning(
            "signal failing; it counts as missing until it recovers",
            metadata: ["signal": "\(declared ?? name)", "error": "\(reason)"])
        }
        failing[name] = reason
      }
    }
    for name in failed { metrics.signalError(name) }
    return values
  }

  // MARK: Shutdown

  /// Drains what the backend runs and leaves the state and audit log complete.
  public func shutdown() async {
    // The local supervisor drains its replicas; Kubernetes workloads stay as they are.
    logger.notice("stopping", metadata: ["backend": "\(type(of: backend))"])
    await backend.shutdown()
    persist()
    writer?.flush()
    audit.close()
  }

  /// nil when written; else what went wrong, for the log and `/healthz`.
  @discardableResult
  func record(_ event: AuditEvent) -> String? { record([event]) }

  /// The events in one append, all or none, so a full disk leaves no record of a tick whose
  /// actions are then not taken.
  func record(_ events: [AuditEvent]) -> String? {
    do {
      try audit.append(contentsOf: events.map { AuditRecord($0, mode: mode) })
      for event in events { seen.records[event.process] = event }
      return nil
    } catch {
      logger.critical("cannot write the audit log", metadata: ["path": "\(audit.path)", "error": "\(error)"])
      return "cannot write the audit log \(audit.path): \(error)"
    }
  }

  /// nil when saved; else what went wrong.
  @discardableResult
  func persist() -> String? {
    lastPersisted = nil
    do {
      let data = try StateStore<ControllerState>.encode(state)
      if let writer {
        // The cluster's copy is saved before any action; this one is the pod's, for a
        // restart in place, and is written in order after the tick moves on.
        if let failure = writer.lastFailure {
          throw StateStore<ControllerState>.Failure(description: failure)
        }
        writer.write(data)
      } else {
        try store.save(encoded: data)
      }
      lastPersisted = data
      return nil
    } catch {
      logger.critical("cannot save state", metadata: ["error": "\(error)"])
      return "cannot save state: \(error)"
    }
  }
}
