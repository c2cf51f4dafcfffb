import Foundation

/// A validated policy file: what the engine runs. Built only by `PolicyLoader`.
public struct Policy: Sendable, Equatable {
  public var controller: ControllerSettings
  /// What `capstan run` acts through. Default: the local process supervisor.
  public var backend: BackendSettings = .local
  public var signals: [SignalSpec]
  /// One per process (and per policy that names no process), in file order.
  public var targets: [ScalingTarget]
  public var providers: [ProviderLimits]
  public var gpuPools: [GPUPool]
  /// The `budgets:` tree; empty where the file has none.
  public var budgets = BudgetTree()
  /// The processes with `variants:`, in file order. Each variant is one of `targets`; the
  /// process itself is not.
  public var variantGroups: [VariantGroup] = []

  public func target(named name: String) -> ScalingTarget? { targets.first { $0.name == name } }
  public func provider(named name: String) -> ProviderLimits? { providers.first { $0.name == name } }
  public func gpuPool(named name: String) -> GPUPool? { gpuPools.first { $0.name == name } }
  public func variantGroup(named name: String) -> VariantGroup? {
    variantGroups.first { $0.process.name == name }
  }
}

public struct ControllerSettings: Sendable, Equatable {
  /// How often the loop ticks. Default 15 s, the HPA's sync period.
  public var interval: TimeInterval = 15
  /// In replay, a sample older than this at a tick counts as missing. Default 2 minutes.
  public var staleness: TimeInterval = 120
}

public struct SignalSpec: Sendable, Equatable {
  public var name: String
  /// Where the signal is declared (or first used, when the file has no `signals:`).
  public var location: FileLocation?
  /// For a value measured per replica (utilization, per-replica throughput), the process whose
  /// replicas it is measured over: replay rescales it when the replayed replica count differs
  /// from the recorded one.
  public var perReplicaOf: String?
  /// Where the live controller reads it; nil for a signal known only to recordings.
  public var source: SignalSource?
  /// For one series of a `series_label` signal (`NAME[PROCESS]`), the declared signal `NAME`,
  /// whose one query reads every series at once.
  public var seriesOf: String? = nil

  public var perReplica: Bool { perReplicaOf != nil }
  /// The signal as declared: the one a failed read is counted against.
  public var declaredName: String { seriesOf ?? name }
}

public enum WorkloadClass: String, Sendable, Equatable, Codable {
  /// Latency-sensitive: never below one replica, scales up without waiting.
  case interactive
  /// Throughput work: may scale to zero; waits longer before scaling down.
  case batch
}

/// Target tracking, the HPA's and KEDA's arithmetic.
public struct TargetTracking: Sendable, Equatable {
  public enum Kind: String, Sendable, Equatable {
    /// `70%`: a per-replica utilization; desired = ceil(ready × value / target).
    case utilization
    /// `100`: a total shared out; desired = ceil(value / target) (KEDA's AverageValue).
    case averageValue = "average_value"
  }

  public var metric: String
  public var kind: Kind
  public var target: Double
  /// No change while value/target is within 1 ± tolerance. Default 0.1, the HPA's.
  public var tolerance: Double
  /// With `min: 0`, a value above this brings the first replica; at or below it, zero replicas.
  public var activationThreshold: Double
}

public enum ComparisonOperator: String, Sendable, Equatable, CaseIterable {
  case greater = ">"
  case greaterOrEqual = ">="
  case less = "<"
  case lessOrEqual = "<="
  case equal = "=="
  case notEqual = "!="

  public func holds(_ lhs: Double, _ rhs: Double) -> Bool {
    switch self {
    case .greater: return lhs > rhs
    case .greaterOrEqual: return lhs >= rhs
    case .less: return lhs < rhs
    case .lessOrEqual: return lhs <= rhs
    case .equal: return lhs == rhs
    case .notEqual: return lhs != rhs
    }
  }
}

public struct Condition: Sendable, Equatable {
  public var metric: String
  public var op: ComparisonOperator
  public var threshold: Threshold
  /// As written, for audit details.
  public var text: String
}

public struct ScaleRule: Sendable, Equatable {
  public enum Match: String, Sendable, Equatable { case any, all }
  public var conditions: [Condition]
  public var match: Match
  /// Conditions must hold continuously this long before the rule fires.
  public var duration: TimeInterval
}

public enum ScaleDirection: String, Sendable, CaseIterable {
  case up = "scale-up"
  case down = "scale-down"
}

/// How a target moves in one direction, as the HPA's `behavior.scaleUp` and `scaleDown`: the
/// policy's rule, the most one decision moves, the cooldown after a move, and the window of
/// recommendations that steadies it.
public struct DirectionRules: Sendable, Equatable {
  /// Conditions that, held, propose a move of `step` (1 when unset) in this direction.
  public var rule: ScaleRule?
  /// `add_instances` or `remove_instances`: the most replicas one decision moves; nil, no limit.
  public var step: Int?
  /// A limit relative to the current count, as the HPA's `Percent` policy: with `step`, the
  /// larger of the two binds (the HPA's `selectPolicy: Max`). Set by the simulator's HPA and
  /// KEDA baselines, not by the policy file.
  public var stepPercent: Double?
  public var cooldown: TimeInterval = 0
  public var stabilization: TimeInterval

  public init(
    rule: ScaleRule? = nil, step: Int? = nil, stepPercent: Double? = nil, cooldown: TimeInterval = 0,
    stabilization: TimeInterval
  ) {
    self.rule = rule
    self.step = step
    self.stepPercent = stepPercent
    self.cooldown = cooldown
    self.stabilization = stabilization
  }
}

/// Where a target's `max` comes from, as messages name it.
public enum MaxSource: String, Sendable {
  /// The process's `scaling.max`.
  case process = "max"
  /// A policy's `max_instances` constraint.
  case constraint = "max_instances"
}

public struct CostCircuitBreaker: Sendable, Equatable {
  public var dailyBudgetUSD: Double
  public var alertThreshold: Double
  public var actionThreshold: Double
  /// A metric in USD per hour (LLM spend) integrated into the day's spend.
  public var costRateMetric: String?
  /// The budget day starts at 00:00 here.
  public var timeZone: TimeZone
}

public struct RateLimitShare: Sendable, Equatable {
  public var provider: String
  public var tokensPerMinutePerReplica: Double?
  public var requestsPerMinutePerReplica: Double?
  public var concurrentRequestsPerReplica: Double?
  /// How long one request takes: with the requests-per-minute share, the requests one replica
  /// may have in flight at once (seed 001's ConcurrencyModel).
  public var requestSeconds: TimeInterval? = nil
}

public struct ProviderLimits: Sendable, Equatable {
  public var name: String
  public var requestsPerMinute: Double?
  public var tokensPerMinute: Double?
  public var maxConcurrentRequests: Double?
  /// The share of each limit Capstan plans to use. Default 0.8.
  public var safetyMargin: Double
}

public struct GPUPool: Sendable, Equatable {
  public var name: String
  public var gpus: Int
}

public struct Resources: Sendable, Equatable {
  public var cpu: Double?
  public var memoryBytes: Double?
  public var gpus: Int = 0
  public var gpuMemoryBytes: Double?
  public var gpuPool: String?
}

/// Everything the engine needs about one scaled thing: a process merged with its policy.
public struct ScalingTarget: Sendable, Equatable {
  public var name: String
  /// The `autoscaling:` entry that applies, if any.
  public var policyName: String?
  public var processType: String?
  public var description: String?
  public var workloadClass: WorkloadClass
  public var min: Int
  public var max: Int
  public var maxSource: MaxSource
  public var metric: String?
  public var tracking: TargetTracking?
  public var costPerHourUSD: Double?
  public var maxCostPerHourUSD: Double?
  public var resources: Resources
  public var rateLimit: RateLimitShare?
  public var up: DirectionRules
  public var down: DirectionRules
  public var drainTimeout: TimeInterval
  public var budget: CostCircuitBreaker?
  /// How the local supervisor runs a replica; nil when the process is not run locally.
  public var local: LocalProcessSettings?
  /// What the Kubernetes backend scales; set for every target when that is the backend.
  public var kubernetes: KubernetesWorkload?
  /// How `capstan simulate` models the process's fleet; nil where the policy has no section.
  public var simulation: SimulationSettings?
  /// From the moment a replica is asked for until it takes work; nil where the policy does not say.
  public var startup: TimeInterval?
  /// A floor learned from the history of a load signal; nil where the process has none.
  public var predictive: PredictiveSettings?
  /// Where the target is declared, for messages about it.
  public var location: FileLocation?
  /// The budget of `budgets:` it is in (and so in every budget above that one); nil: none.
  public var budgetName: String? = nil
  /// For one variant of a process with `variants:`, which process and what a replica carries;
  /// nil for any other target.
  public var variant: VariantMembership? = nil
  /// Its service-level objectives and the signals that carry its load, where it is sized from
  /// them; nil for any other target.
  public var slo: SLOScaling? = nil

  /// The signals its proposals read (tracking, scale_up and scale_down rules, the SLO sizing):
  /// any of them missing vetoes a scale-down.
  public var proposalSignalNames: [String] {
    var names: [String] = []
    for name in [tracking?.metric].compactMap({ $0 })
      + ((up.rule?.conditions ?? []) + (down.rule?.conditions ?? [])).map(\.metric)
      + (slo?.sizingSignalNames ?? [])
    where !names.contains(name) {
      names.append(name)
    }
    return names
  }

  public func rules(_ direction: ScaleDirection) -> DirectionRules { direction == .up ? up : down }

  /// Every signal this target reads, in a stable order, for audit records.
  public var signalNames: [String] {
    var names: [String] = []
    func add(_ name: String?) {
      if let name, !names.contains(name) { names.append(name) }
    }
    add(metric)
    for condition in (up.rule?.conditions ?? []) + (down.rule?.conditions ?? []) { add(condition.metric) }
    add(budget?.costRateMetric)
    add(predictive?.signal)
    for name in slo?.signalNames ?? [] { add(name) }
    for name in variant?.learning?.signalNames ?? [] { add(name) }
    return names
  }
}

/// The valid range of every number a policy, a recording or a signal may hold, in one place so
/// the README and the checks agree. Past these, arithmetic stops meaning anything.
public enum PolicyLimits {
  /// Durations: cooldowns, windows, intervals, timeouts. A week is longer than any of them needs.
  public static let maxDuration: TimeInterval = 7 * 86_400
  /// Replica counts, steps and GPUs.
  public static let maxCount = 1_000_000
  /// Any other number: costs, targets, thresholds, limits, signal values.
  public static let maxMagnitude = 1e15
  /// Targets and per-replica rates: below this, a ratio is no longer a count.
  public static let minPositive = 1e-6
}

/// The documented defaults, in one place so the README and the validator agree.
public enum PolicyDefaults {
  public static let interval: TimeInterval = 15
  public static let staleness: TimeInterval = 120
  public static let tolerance = 0.1
  public static let interactiveScaleDownWindow: TimeInterval = 300
  public static let batchScaleDownWindow: TimeInterval = 600
  public static let interactiveScaleUpWindow: TimeInterval = 0
  public static let batchScaleUpWindow: TimeInterval = 30
  public static let drainTimeout: TimeInterval = 30
  public static let safetyMargin = 0.8
  public static let alertThreshold = 0.8
  public static let actionThreshold = 0.95
}

public enum BackendSettings: Sendable, Equatable {
  /// Capstan's own supervisor starts and stops the processes on this machine.
  case local
  /// A program is run with the process name and the new replica count.
  case command(CommandBackendSettings)
  /// Workloads in a Kubernetes cluster are scaled through their `/scale` subresource.
  case kubernetes(KubernetesSettings)

  /// As the policy file names it.
  public var name: String {
    switch self {
    case .local: return "local"
    case .command: return "command"
    case .kubernetes: return "kubernetes"
    }
  }
}

public struct CommandBackendSettings: Sendable, Equatable, Codable {
  /// Run as argv + [process, replicas]; its exit status is the result.
  public var argv: [String]
  /// Run as statusArgv + [process]; prints the current replica count. Without it Capstan
  /// assumes the count it last set.
  public var statusArgv: [String]?
  public var timeout: TimeInterval

  public init(argv: [String], statusArgv: [String]? = nil, timeout: TimeInterval = 30) {
    self.argv = argv
    self.statusArgv = statusArgv
    self.timeout = timeout
  }
}

public struct LocalProcessSettings: Sendable, Equatable, Codable {
  public var command: [String]
  public var environment: [String: String]
  /// Relative to the policy file's folder; default that folder.
  public var workingDirectory: String?
  /// Replica i gets PORT = portBase + i.
  public var portBase: Int?
  /// With `portBase`, a replica counts as ready only once `GET http://127.0.0.1:PORT<readyPath>`
  /// answers 2xx (vLLM: `/health`), so a server still loading its model is a replica starting,
  /// not one serving; without it, a replica is ready once its process runs.
  public var readyPath: String?

  public init(
    command: [String], environment: [String: String] = [:], workingDirectory: String? = nil,
    portBase: Int? = nil, readyPath: String? = nil
  ) {
    self.command = command
    self.environment = environment
    self.workingDirectory = workingDirectory
    self.portBase = portBase
    self.readyPath = readyPath
  }
}
