import Yams

// The policy file exactly as written. Every leaf is a `RawScalar` (its text and where it is), so
// decoding never fails on a value: units, ranges and references are checked in `PolicyValidator`,
// which can then report all of them with their line and column.

/// One scalar value as written, with its location.
struct RawScalar: Decodable {
  var text: String
  var location: FileLocation

  init(text: String, location: FileLocation) {
    self.text = text
    self.location = location
  }

  init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? YAMLNodeDecoder else {
      self.text = try decoder.singleValueContainer().decode(String.self)
      self.location = FileLocation(file: "", line: 1, column: 1)
      return
    }
    self.location = decoder.location
    if let scalar = decoder.node.scalar {
      self.text = scalar.string
    } else {
      decoder.sink.error(
        decoder.location,
        "\(decoder.pathDescription) must be a single value, not \(decoder.node.kindDescription)")
      self.text = ""
    }
  }
}

/// A mapping whose keys are names the user chose (processes, policies, signals), in file order.
struct RawMap<Value: Decodable>: Decodable {
  var entries: [(name: RawScalar, value: Value)] = []

  init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? YAMLNodeDecoder else { return }
    guard let mapping = decoder.node.mapping else {
      if !decoder.node.isNull {
        decoder.sink.error(
          decoder.location,
          "\(decoder.pathDescription) must be a mapping of names, not \(decoder.node.kindDescription)")
      }
      return
    }
    for (keyNode, valueNode) in mapping {
      let name = keyNode.scalar?.string ?? ""
      let key = RawScalar(text: name, location: decoder.location(of: keyNode))
      let child = decoder.child(valueNode, key: NodeCodingKey(stringValue: name))
      entries.append((key, try Value(from: child)))
    }
  }
}

struct RawPolicyFile: Decodable {
  var controller: RawController?
  var backend: RawBackend?
  var signals: RawMap<RawSignal>?
  var processes: RawMap<RawProcess>?
  var autoscaling: RawMap<RawAutoscalingPolicy>?
  var providers: RawMap<RawProvider>?
  var gpuPools: RawMap<RawGPUPool>?
  var kubernetes: RawKubernetes?
  var budgets: RawMap<RawBudget>?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case controller, backend, signals, processes, autoscaling, providers, kubernetes, budgets
    case gpuPools = "gpu_pools"
  }
}

/// `backend: local`, `backend: kubernetes`, or `backend: {command: {argv: [...], ...}}`.
struct RawBackend: Decodable {
  var name: RawScalar?
  var command: RawCommandBackend?
  var location: FileLocation

  enum CodingKeys: String, CodingKey, CaseIterable { case local, command, kubernetes }

  init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? YAMLNodeDecoder else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: [], debugDescription: "backend needs the YAML decoder"))
    }
    location = decoder.location
    if decoder.node.scalar != nil {
      name = try RawScalar(from: decoder)
      return
    }
    let container = try decoder.container(keyedBy: CodingKeys.self)
    command = try container.decodeIfPresent(RawCommandBackend.self, forKey: .command)
    if container.contains(.local) { name = RawScalar(text: "local", location: location) }
    if container.contains(.kubernetes) { name = RawScalar(text: "kubernetes", location: location) }
  }
}

struct RawCommandBackend: Decodable {
  var argv: RawArgv?
  var statusArgv: RawArgv?
  var timeout: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case argv, timeout
    case statusArgv = "status_argv"
  }
}

struct RawLocalProcess: Decodable {
  var command: RawArgv?
  var env: RawMap<RawScalar>?
  var cwd, portBase, readyPath: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case command, env, cwd
    case portBase = "port_base", readyPath = "ready_path"
  }
}

struct RawController: Decodable {
  var interval, staleness: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable { case interval, staleness }
}

struct RawSignal: Decodable {
  struct Source {
    var key: String
    var validate: SignalSourceKind.Validation
  }

  var perReplica, description: RawScalar?
  /// Each source key given, in file order (one is right; more is reported).
  var sources: [Source] = []

  /// `per_replica`, `description`, and the key of every source in `SignalSourceKind.all`.
  struct Key: CodingKey, CaseIterable {
    var stringValue: String
    var intValue: Int? { nil }
    static let own = ["per_replica", "description"]

    init?(stringValue: String) {
      guard Self.own.contains(stringValue) || SignalSourceKind.named(stringValue) != nil else { return nil }
      self.stringValue = stringValue
    }
    init?(intValue: Int) { nil }

    static var allCases: [Key] {
      (own + SignalSourceKind.all.map(\.key)).compactMap { Key(stringValue: $0) }
    }
  }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: Key.self)
    for key in container.allKeys {
      switch key.stringValue {
      case "per_replica": perReplica = try container.decode(RawScalar.self, forKey: key)
      case "description": description = try container.decode(RawScalar.self, forKey: key)
      default:
        guard let kind = SignalSourceKind.named(key.stringValue) else { continue }
        sources.append(
          Source(key: kind.key, validate: try kind.read(try container.superDecoder(forKey: key))))
      }
    }
  }
}

/// A command as a list of arguments. A single string is refused with its own message: Capstan
/// never hands a string to a shell behind the user's back.
struct RawArgv: Decodable {
  var items: [RawScalar] = []
  var location: FileLocation
  /// True when the value was a string, already reported.
  var refused = false

  init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? YAMLNodeDecoder else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: [], debugDescription: "argv needs the YAML decoder"))
    }
    location = decoder.location
    if let scalar = decoder.node.scalar {
      decoder.sink.error(
        location,
        "argv is the string '\(scalar.string)': write a list such as [/usr/local/bin/queue-depth, --json]; to use a shell, write it yourself: [sh, -c, '...']"
      )
      refused = true
      return
    }
    var container = try decoder.unkeyedContainer()
    while !container.isAtEnd { items.append(try container.decode(RawScalar.self)) }
  }
}

struct RawProcess: Decodable {
  var type, description: RawScalar?
  var `class`: RawScalar?
  var costPerHourUSD: RawScalar?
  var scaling: RawProcessScaling?
  var resources: RawResources?
  var rateLimit: RawRateLimitShare?
  var local: RawLocalProcess?
  var kubernetes: RawKubernetesWorkload?
  var simulation: RawSimulation?
  var startup: RawScalar?
  var predictive: RawPredictive?
  var budget: RawBudgetName?
  var variants: RawMap<RawVariant>?
  var prefer: RawOneOrList<RawScalar>?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case type, description, `class`, scaling, resources, local, kubernetes, simulation, startup, predictive
    case budget, variants, prefer
    case costPerHourUSD = "cost_per_hour_usd", rateLimit = "rate_limit"
  }
}

struct RawProcessScaling: Decodable {
  var metric, target, targetType, tolerance, activationThreshold, min, max: RawScalar?
  var slo: RawOneOrList<RawSLOObjective>?
  var load, running, waiting, measuredOver: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case metric, target, tolerance, min, max, slo, load, running, waiting
    case measuredOver = "measured_over"
    case targetType = "target_type", activationThreshold = "activation_threshold"
  }
}

struct RawResources: Decodable {
  var cpu, memory, gpu, gpuMemory, gpuPool: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case cpu, memory, gpu
    case gpuMemory = "gpu_memory", gpuPool = "gpu_pool"
  }
}

struct RawRateLimitShare: Decodable {
  var provider, tokensPerMinutePerReplica, requestsPerMinutePerReplica,
    concurrentRequestsPerReplica, requestSeconds: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case provider
    case requestSeconds = "request_seconds"
    case tokensPerMinutePerReplica = "tokens_per_minute_per_replica"
    case requestsPerMinutePerReplica = "requests_per_minute_per_replica"
    case concurrentRequestsPerReplica = "concurrent_requests_per_replica"
  }
}

struct RawAutoscalingPolicy: Decodable {
  var process: RawScalar?
  var scaleUp: RawRule?
  var scaleDown: RawRule?
  var costCircuitBreaker: RawCostCircuitBreaker?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case process
    case scaleUp = "scale_up", scaleDown = "scale_down"
    case costCircuitBreaker = "cost_circuit_breaker"
  }
}

struct RawRule: Decodable {
  var conditions: [RawConditionItem]?
  var match: RawScalar?
  var constraints: [RawConstraint]?
  var action: RawAction?
  var stabilizationWindow: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case conditions, match, constraints, action
    case stabilizationWindow = "stabilization_window"
  }
}

/// `- metric: queue_depth > 50` or `- duration: 10m`.
struct RawConditionItem: Decodable {
  var metric, duration: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable { case metric, duration }
}

/// `- max_instances: 8`, one constraint per list item as the seed writes them.
struct RawConstraint: Decodable {
  var maxCostPerHourUSD, maxInstances, minInstances: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case maxCostPerHourUSD = "max_cost_per_hour_usd", maxInstances = "max_instances"
    case minInstances = "min_instances"
  }
}

struct RawAction: Decodable {
  var addInstances, removeInstances, cooldown, drainTimeout: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case cooldown
    case addInstances = "add_instances", removeInstances = "remove_instances"
    case drainTimeout = "drain_timeout"
  }
}

struct RawCostCircuitBreaker: Decodable {
  var dailyBudgetUSD, alertThreshold, actionThreshold, action, costRateMetric, timezone: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case action, timezone
    case dailyBudgetUSD = "daily_budget_usd", alertThreshold = "alert_threshold"
    case actionThreshold = "action_threshold", costRateMetric = "cost_rate_metric"
  }
}

/// An entry of `budgets:`.
struct RawBudget: Decodable {
  var parent, dailyBudgetUSD, actionThreshold, timezone, costRateMetric: RawScalar?
  var maxReplicas, maxGPUs, weight, rateLimitWeight, keepDays: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case parent, timezone, weight
    case rateLimitWeight = "rate_limit_weight"
    case dailyBudgetUSD = "daily_budget_usd", actionThreshold = "action_threshold"
    case costRateMetric = "cost_rate_metric", maxReplicas = "max_replicas", maxGPUs = "max_gpus"
    case keepDays = "keep_days"
  }
}

/// A process's `budget:`, one name. A list is refused with its own message: a process is in
/// one budget, and that budget's parents.
struct RawBudgetName: Decodable {
  var name: RawScalar?

  init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? YAMLNodeDecoder else {
      name = try RawScalar(from: decoder)
      return
    }
    if decoder.node.sequence != nil {
      decoder.sink.error(
        decoder.location,
        "\(decoder.pathDescription) names several budgets: a process is in one budget, and in every budget above it; give the budgets parents so one holds the others"
      )
      return
    }
    name = try RawScalar(from: decoder)
  }
}

struct RawProvider: Decodable {
  var requestsPerMinute, tokensPerMinute, maxConcurrentRequests, safetyMargin: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case requestsPerMinute = "requests_per_minute", tokensPerMinute = "tokens_per_minute"
    case maxConcurrentRequests = "max_concurrent_requests", safetyMargin = "safety_margin"
  }
}

struct RawGPUPool: Decodable {
  var gpus, description: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable { case gpus, description }
}
extension RawMap: Sendable where Value: Sendable {}

/// A value written alone or as a list: `prefer: l4` or `prefer: [l4, h100]`, `slo: {…}` or
/// `slo: [{…}, {…}]`, `devices: all` or `devices: [0, 1]`. The items in order, whether a list
/// (or nothing) was written, and where. Nothing written is an empty list.
struct RawOneOrList<Item: Decodable>: Decodable {
  var items: [Item] = []
  var isList = true
  var location: FileLocation

  init(from decoder: any Decoder) throws {
    guard let decoder = decoder as? YAMLNodeDecoder else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: [], debugDescription: "a value or a list needs the YAML decoder"))
    }
    location = decoder.location
    guard decoder.node.sequence != nil || decoder.node.isNull else {
      isList = false
      items = [try Item(from: decoder)]
      return
    }
    var container = try decoder.unkeyedContainer()
    while !container.isAtEnd { items.append(try container.decode(Item.self)) }
  }
}

extension RawOneOrList: Sendable where Item: Sendable {}
