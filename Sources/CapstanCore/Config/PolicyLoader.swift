import Foundation
import Yams

/// A loaded policy and the warnings found on the way (errors make `load` throw instead).
public struct LoadedPolicy: Sendable {
  public var policy: Policy
  public var warnings: [Diagnostic]
}

/// Parses and validates a policy file. Pure: it takes the text; reading the file is the caller's.
public enum PolicyLoader {
  /// The file's bytes: text that is not UTF-8, or holds control characters YAML forbids, is
  /// refused at the line and column of the first bad byte, shown escaped.
  public static func load(data: Data, file: String) throws(PolicyLoadError) -> LoadedPolicy {
    var line = 1
    var column = 1
    var index = data.startIndex
    if data.starts(with: [0xEF, 0xBB, 0xBF]) { index += 3 }  // a byte-order mark is allowed
    while index < data.endIndex {
      let length = utf8SequenceLength(data, at: index)
      guard length > 0 else {
        throw PolicyLoadError(diagnostics: [
          Diagnostic(
            .error, at: FileLocation(file: file, line: line, column: column),
            "byte 0x\(String(data[index], radix: 16, uppercase: true)) is not UTF-8 text: save the file as UTF-8"
          )
        ])
      }
      let byte = data[index]
      if length == 1 && (byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D || byte == 0x7F) {
        throw PolicyLoadError(diagnostics: [
          Diagnostic(
            .error, at: FileLocation(file: file, line: line, column: column),
            "control character U+\(String(format: "%04X", byte)) is not allowed in a policy file: remove it")
        ])
      }
      if byte == 0x0A {
        line += 1
        column = 1
      } else {
        column += 1
      }
      index += length
    }
    return try load(yaml: String(decoding: data, as: UTF8.self), file: file)
  }

  /// The length of the valid UTF-8 sequence at `index`, or 0 where the bytes are not UTF-8.
  private static func utf8SequenceLength(_ data: Data, at index: Data.Index) -> Int {
    let lead = data[index]
    let (length, low, high): (Int, UInt8, UInt8)
    switch lead {
    case 0x00...0x7F: return 1
    case 0xC2...0xDF: (length, low, high) = (2, 0x80, 0xBF)
    case 0xE0: (length, low, high) = (3, 0xA0, 0xBF)
    case 0xE1...0xEC, 0xEE...0xEF: (length, low, high) = (3, 0x80, 0xBF)
    case 0xED: (length, low, high) = (3, 0x80, 0x9F)
    case 0xF0: (length, low, high) = (4, 0x90, 0xBF)
    case 0xF1...0xF3: (length, low, high) = (4, 0x80, 0xBF)
    case 0xF4: (length, low, high) = (4, 0x80, 0x8F)
    default: return 0
    }
    guard index + length <= data.endIndex else { return 0 }
    guard (low...high).contains(data[index + 1]) else { return 0 }
    for offset in 2..<length where !(0x80...0xBF).contains(data[index + offset]) { return 0 }
    return length
  }

  /// - Throws: `PolicyLoadError` with every error and warning found, in file order.
  public static func load(yaml: String, file: String) throws(PolicyLoadError) -> LoadedPolicy {
    let sink = DiagnosticSink(file: file)
    let node: Node?
    do {
      node = try Yams.compose(yaml: yaml)
    } catch {
      if case .duplicatedKeysInMapping(let keys, let context)? = error as? YamlError,
        let repeated = repeatedKeyLine(yaml, key: keys.first, first: context.mark)
      {
        // Where the key is given again, which is the line to change, and where it first was.
        sink.error(
          FileLocation(file: file, line: repeated, column: context.mark.column),
          "malformed YAML: '\(keys.first ?? "")' is given again here, after line \(context.mark.line): each key may appear once"
        )
        throw PolicyLoadError(diagnostics: sink.diagnostics)
      }
      sink.error(yamlErrorLocation(error, file: file), "malformed YAML: \(yamlErrorMessage(error))")
      throw PolicyLoadError(diagnostics: sink.diagnostics)
    }
    guard let node, !node.isNull else {
      sink.error(
        FileLocation(file: file, line: 1, column: 1),
        "the file is empty: a policy needs at least 'processes:' or 'autoscaling:'")
      throw PolicyLoadError(diagnostics: sink.diagnostics)
    }
    let raw: RawPolicyFile
    do {
      raw = try RawPolicyFile(from: YAMLNodeDecoder(node: node, sink: sink, codingPath: []))
    } catch {
      // The raw types are all optional text, so only a broken decoder gets here.
      sink.error(FileLocation(file: file, line: 1, column: 1), "could not read the file: \(error)")
      throw PolicyLoadError(diagnostics: sink.diagnostics)
    }
    let policy = PolicyValidator(sink: sink, file: file).validate(raw, root: node)
    guard !sink.hasErrors, let policy else { throw PolicyLoadError(diagnostics: sink.diagnostics) }
    return LoadedPolicy(policy: policy, warnings: sink.diagnostics)
  }

  /// The next line after the first that gives the same key at the same column, for block
  /// mappings; nil for flow mappings (`{a: 1, a: 2}`), reported at the first.
  private static func repeatedKeyLine(_ yaml: String, key: String?, first: Mark) -> Int? {
    guard let key else { return nil }
    let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
    guard first.line >= 1, first.column >= 1 else { return nil }
    for number in (first.line + 1)..<(lines.count + 1) {
      let text = lines[number - 1]
      let indent = text.prefix { $0 == " " }.count
      if indent + 1 < first.column && !text.trimmingCharacters(in: .whitespaces).isEmpty
        && !text.trimmingCharacters(in: .whitespaces).hasPrefix("#")
      {
        return nil  // the mapping ended
      }
      guard indent + 1 == first.column else { continue }
      let rest = text.dropFirst(indent)
      for quoted in [key, "\"\(key)\"", "'\(key)'"] where rest.hasPrefix(quoted) {
        if rest.dropFirst(quoted.count).drop(while: { $0 == " " }).first == ":" { return number }
      }
    }
    return nil
  }

  private static func yamlErrorLocation(_ error: any Error, file: String) -> FileLocation {
    if let error = error as? YamlError {
      switch error {
      case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
        return FileLocation(file: file, line: mark.line, column: mark.column)
      case .duplicatedKeysInMapping(_, let context):
        return FileLocation(file: file, line: context.mark.line, column: context.mark.column)
      default: break
      }
    }
    return FileLocation(file: file, line: 1, column: 1)
  }

  private static func yamlErrorMessage(_ error: any Error) -> String {
    if let error = error as? YamlError {
      switch error {
      case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
        .composer(let context, let problem, _, _):
        let prefix = context.map { "\($0.text), " } ?? ""
        return prefix + problem
          + " (check indentation and that every 'key: value' has a space after the colon)"
      case .duplicatedKeysInMapping(let duplicates, _):
        return
          "duplicate keys \(duplicates.map { "'\($0)'" }.joined(separator: ", ")): each key may appear once"
      default: break
      }
    }
    return "\(error)"
  }
}

/// Turns the raw file into a `Policy`, reporting every problem to the sink.
struct PolicyValidator {
  let sink: DiagnosticSink
  let file: String

  private static var conditionPattern: Regex<(Substring, Substring, Substring, Substring)> {
    #/^\s*([A-Za-z_][A-Za-z0-9_:.\-]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$/#
  }

  func validate(_ raw: RawPolicyFile, root: Node) -> Policy? {
    let top = FileLocation(file: file, line: root.mark?.line ?? 1, column: root.mark?.column ?? 1)
    if raw.processes == nil && raw.autoscaling == nil {
      sink.error(top, "a policy file needs 'processes:', 'autoscaling:' or both")
    }
    let controller = validateController(raw.controller)
    let providers = (raw.providers?.entries ?? []).compactMap { validateProvider($0.name, $0.value) }
    let pools = (raw.gpuPools?.entries ?? []).compactMap { validatePool($0.name, $0.value) }
    let declaredSignals = raw.signals.map {
      Dictionary($0.entries.map { ($0.name.text, $0) }, uniquingKeysWith: { a, _ in a })
    }

    var references = SignalReferences(declared: declaredSignals.map { Set($0.keys) })
    var targets: [ScalingTarget] = []
    var processLocations: [String: FileLocation] = [:]
    for (name, process) in raw.processes?.entries ?? [] {
      processLocations[name.text] = name.location
      if let target = validateProcess(
        name, process, providers: providers, pools: pools, references: &references)
      {
        targets.append(target)
      }
    }

    var claimed: [String: String] = [:]
    for (name, rawPolicy) in raw.autoscaling?.entries ?? [] {
      let targetName: String
      if let process = rawPolicy.process {
        guard processLocations[process.text] != nil else {
          let hint =
            closestMatch(to: process.text, in: processLocations.keys).map { "; did you mean '\($0)'?" } ?? ""
          sink.error(
            process.location,
            "policy '\(name.text)' names process '\(process.text)', which is not declared under processes\(hint)"
          )
          continue
        }
        targetName = process.text
      } else {
        targetName = name.text
      }
      if let other = claimed[targetName] {
        sink.error(
          name.location,
          "process '\(targetName)' already has policy '\(other)': give each process one autoscaling entry")
        continue
      }
      claimed[targetName] = name.text
      if let index = targets.firstIndex(where: { $0.name == targetName }) {
        applyPolicy(name, rawPolicy, to: &targets[index], references: &references)
      } else {
        // A policy for no declared process stands for a target of its own name, so the seed's
        // autoscaling block is a complete policy file on its own.
        var target = standaloneTarget(named: name.text, location: name.location)
        applyPolicy(name, rawPolicy, to: &target, references: &references)
        if target.max == Int.max {
          sink.error(
            name.location,
            "policy '\(name.text)' scales no declared process and has no max_instances: add 'process:', a process named '\(name.text)', or a max_instances constraint"
          )
          target.max = target.min
        }
        targets.append(target)
      }
    }

    for target in targets where target.min == 0 && target.workloadClass == .batch {
      checkWakeable(target, location: target.location ?? top)
    }
    let signals = validateSignals(declaredSignals, references: references, targets: targets)
    for target in targets {
      checkCeilings(
        target, providers: providers, pools: pools, location: processLocations[target.name] ?? top)
    }
    var policy = Policy(
      controller: controller, signals: signals, targets: targets, providers: providers, gpuPools: pools)
    if let backend = raw.backend, let settings = validateBackend(backend) { policy.backend = settings }
    if raw.backend == nil && raw.kubernetes != nil { policy.backend = .kubernetes(KubernetesSettings()) }
    if case .kubernetes = policy.backend {
      policy.backend = .kubernetes(validateKubernetes(raw.kubernetes))
      let workloads = Dictionary(
        (raw.processes?.entries ?? []).map { ($0.name.text, ($0.name, $0.value.kubernetes)) },
        uniquingKeysWith: { a, _ in a })
      for index in policy.targets.indices {
        let target = policy.targets[index]
        let name = RawScalar(text: target.name, location: target.location ?? top)
        if let (process, rawWorkload) = workloads[target.name], let rawWorkload {
          policy.targets[index].kubernetes = validateWorkload(rawWorkload, process: process)
        } else if let workloadName = defaultWorkloadName(name) {
          policy.targets[index].kubernetes = KubernetesWorkload(kind: .deployment, name: workloadName)
        }
      }
    } else if let kubernetes = raw.kubernetes {
      sink.warning(
        (kubernetes.kubeconfig ?? kubernetes.context ?? kubernetes.namespace)?.location ?? top,
        "'kubernetes:' has no effect: the backend is not kubernetes")
    }
    return policy
  }

  // MARK: Sections

  private func validateController(_ raw: RawController?) -> ControllerSettings {
    var settings = ControllerSettings()
    if let interval = raw?.interval, let value = duration(interval) {
      if value < 1 {
        sink.error(interval.location, "controller.interval is \(interval.text): tick at least every 1s")
      } else {
        settings.interval = value
      }
    }
    if let staleness = raw?.staleness, let value = duration(staleness) { settings.staleness = value }
    return settings
  }

  private func validateProvider(_ name: RawScalar, _ raw: RawProvider) -> ProviderLimits? {
    let provider = ProviderLimits(
      name: name.text,
      requestsPerMinute: raw.requestsPerMinute.flatMap { positive($0, "requests per minute") },
      tokensPerMinute: raw.tokensPerMinute.flatMap { positive($0, "tokens per minute") },
      maxConcurrentRequests: raw.maxConcurrentRequests.flatMap { positive($0, "concurrent requests") },
      safetyMargin: raw.safetyMargin.flatMap { fraction($0, "safety_margin") } ?? PolicyDefaults.safetyMargin)
    if raw.requestsPerMinute == nil && raw.tokensPerMinute == nil && raw.maxConcurrentRequests == nil {
      sink.error(
        name.location,
        "provider '\(name.text)' has no limits: give requests_per_minute, tokens_per_minute or max_concurrent_requests"
      )
    }
    return provider
  }

  private func validatePool(_ name: RawScalar, _ raw: RawGPUPool) -> GPUPool? {
    guard let gpus = raw.gpus else {
      sink.error(name.location, "GPU pool '\(name.text)' needs 'gpus:', the number of whole GPUs it holds")
      return nil
    }
    guard let count = wholeGPUs(gpus) else { return nil }
    return GPUPool(name: name.text, gpus: count)
  }

  private func validateProcess(
    _ name: RawScalar, _ raw: RawProcess, providers: [ProviderLimits], pools: [GPUPool],
    references: inout SignalReferences
  ) -> ScalingTarget? {
    var workloadClass = WorkloadClass.interactive
    if let rawClass = raw.class {
      if let value = WorkloadClass(rawValue: rawClass.text) {
        workloadClass = value
      } else {
        sink.error(rawClass.location, "class is '\(rawClass.text)': use interactive or batch")
      }
    }
    guard let scaling = raw.scaling else {
      sink.error(name.location, "process '\(name.text)' needs 'scaling:' with at least min and max")
      return nil
    }
    let minimum = scaling.min.flatMap { count($0, "replicas") } ?? 1
    var maximum = minimum
    if let rawMax = scaling.max {
      maximum = count(rawMax, "replicas") ?? minimum
    } else {
      sink.error(name.location, "process '\(name.text)' needs scaling.max, the most replicas it may run")
    }
    if maximum < minimum, let rawMax = scaling.max {
      sink.error(rawMax.location, "scaling.max (\(maximum)) is below scaling.min (\(minimum))")
    }
    if maximum == 0, let rawMax = scaling.max {
      sink.error(rawMax.location, "scaling.max is 0: a process must be allowed at least one replica")
    }
    if workloadClass == .interactive && minimum == 0, let rawMin = scaling.min {
      sink.error(
        rawMin.location,
        "scaling.min is 0 but class is interactive, which never goes below 1: set 'class: batch' to scale to zero"
      )
    }

    var target = ScalingTarget(
      name: name.text, policyName: nil, processType: raw.type?.text, description: raw.description?.text,
      workloadClass: workloadClass, min: minimum, max: maximum, maxSource: "max",
      metric: scaling.metric?.text, tracking: nil,
      costPerHourUSD: raw.costPerHourUSD.flatMap { nonNegative($0, "USD per hour") },
      maxCostPerHourUSD: nil, resources: validateResources(raw.resources, pools: pools), rateLimit: nil,
      scaleUp: nil, scaleDown: nil, scaleUpStep: nil, scaleDownStep: nil, scaleUpCooldown: 0,
      scaleDownCooldown: 0,
      scaleUpStabilization: workloadClass == .batch
        ? PolicyDefaults.batchScaleUpWindow : PolicyDefaults.interactiveScaleUpWindow,
      scaleDownStabilization: workloadClass == .batch
        ? PolicyDefaults.batchScaleDownWindow : PolicyDefaults.interactiveScaleDownWindow,
      drainTimeout: PolicyDefaults.drainTimeout, budget: nil, local: nil, location: name.location)

    if let metric = scaling.metric { references.note(metric, perReplicaOf: nil, usedBy: name.text) }
    if let rawTarget = scaling.target {
      guard let metric = scaling.metric else {
        sink.error(
          rawTarget.location, "scaling.target needs scaling.metric: name the signal the target applies to")
        return target
      }
      target.tracking = validateTracking(scaling, rawTarget: rawTarget, metric: metric.text)
      if let tracking = target.tracking {
        if tracking.kind == .utilization {
          references.note(metric, perReplicaOf: name.text, usedBy: name.text)
          if minimum == 0, let rawMin = scaling.min {
            sink.error(
              rawMin.location,
              "scaling.min is 0 with a utilization target: per-replica utilization does not exist at zero replicas; scale to zero on a total such as queue depth (a plain-number target)"
            )
          }
        }
      }
    } else {
      for key in [scaling.targetType, scaling.tolerance].compactMap({ $0 }) {
        sink.warning(
          key.location, "'\(key.text)' has no effect: process '\(name.text)' has no scaling.target")
      }
    }
    if let share = raw.rateLimit {
      target.rateLimit = validateRateLimit(share, process: name.text, providers: providers)
    }
    if let local = raw.local { target.local = validateLocal(local, process: name) }
    return target
  }

  private func validateTracking(_ scaling: RawProcessScaling, rawTarget: RawScalar, metric: String)
    -> TargetTracking?
  {
    let isPercent = rawTarget.text.trimmingCharacters(in: .whitespaces).hasSuffix("%")
    var kind: TargetTracking.Kind = isPercent ? .utilization : .averageValue
    if let rawType = scaling.targetType {
      guard let explicit = TargetTracking.Kind(rawValue: rawType.text) else {
        sink.error(rawType.location, "target_type is '\(rawType.text)': use utilization or average_value")
        return nil
      }
      if explicit == .averageValue && isPercent {
        sink.error(
          rawTarget.location,
          "target is a percent but target_type is average_value: write the total per replica as a plain number"
        )
        return nil
      }
      kind = explicit
    }
    let value: Double?
    switch Quantity.threshold(rawTarget.text) {
    case .success(let threshold) where threshold.unit == .none || threshold.unit == .percent:
      value = threshold.value
    case .success:
      sink.error(
        rawTarget.location, "target is '\(rawTarget.text)': write a percent (70%) or a plain number (100)")
      value = nil
    case .failure(let failure):
      sink.error(rawTarget.location, "target: \(failure.message)")
      value = nil
    }
    guard let value else { return nil }
    guard value >= PolicyLimits.minPositive else {
      sink.error(rawTarget.location, "target is \(rawTarget.text): it must be at least 0.000001")
      return nil
    }
    var tolerance = PolicyDefaults.tolerance
    if let rawTolerance = scaling.tolerance {
      if case .success(let percent) = Quantity.percent(rawTolerance.text) {
        tolerance = percent / 100
      } else if let fraction = fraction(rawTolerance, "tolerance") {
        tolerance = fraction
      }
    }
    let activation = scaling.activationThreshold.flatMap { nonNegative($0, "the metric's own unit") } ?? 0
    return TargetTracking(
      metric: metric, kind: kind, target: value, tolerance: tolerance, activationThreshold: activation)
  }

  private func validateResources(_ raw: RawResources?, pools: [GPUPool]) -> Resources {
    guard let raw else { return Resources() }
    var resources = Resources()
    resources.cpu = raw.cpu.flatMap { nonNegative($0, "CPU cores, such as 0.5 or 4") }
    resources.memoryBytes = raw.memory.flatMap { memory($0) }
    resources.gpuMemoryBytes = raw.gpuMemory.flatMap { memory($0) }
    if let gpu = raw.gpu { resources.gpus = wholeGPUs(gpu) ?? 0 }
    if let pool = raw.gpuPool {
      if !pools.contains(where: { $0.name == pool.text }) {
        let hint = closestMatch(to: pool.text, in: pools.map(\.name)).map { "; did you mean '\($0)'?" } ?? ""
        sink.error(pool.location, "GPU pool '\(pool.text)' is not declared under gpu_pools\(hint)")
      } else if resources.gpus == 0 {
        sink.error(
          pool.location,
          "resources.gpu_pool is set but resources.gpu is not: say how many GPUs each replica takes")
      }
      resources.gpuPool = pool.text
    }
    return resources
  }

  private func validateRateLimit(_ raw: RawRateLimitShare, process: String, providers: [ProviderLimits])
    -> RateLimitShare?
  {
    guard let providerName = raw.provider else {
      sink.error(
        raw.tokensPerMinutePerReplica?.location ?? raw.requestsPerMinutePerReplica?.location
          ?? FileLocation(file: file, line: 1, column: 1),
        "rate_limit of process '\(process)' needs 'provider:', a name under providers")
      return nil
    }
    guard let provider = providers.first(where: { $0.name == providerName.text }) else {
      let hint =
        closestMatch(to: providerName.text, in: providers.map(\.name)).map { "; did you mean '\($0)'?" } ?? ""
      sink.error(
        providerName.location, "provider '\(providerName.text)' is not declared under providers\(hint)")
      return nil
    }
    let share = RateLimitShare(
      provider: provider.name,
      tokensPerMinutePerReplica: raw.tokensPerMinutePerReplica.flatMap { positive($0, "tokens per minute") },
      requestsPerMinutePerReplica: raw.requestsPerMinutePerReplica.flatMap {
        positive($0, "requests per minute")
      },
      concurrentRequestsPerReplica: raw.concurrentRequestsPerReplica.flatMap {
        positive($0, "concurrent requests")
      })
    let binds =
      (share.tokensPerMinutePerReplica != nil && provider.tokensPerMinute != nil)
      || (share.requestsPerMinutePerReplica != nil && provider.requestsPerMinute != nil)
      || (share.concurrentRequestsPerReplica != nil && provider.maxConcurrentRequests != nil)
    if !binds {
      sink.error(
        providerName.location,
        "rate_limit of process '\(process)' sets no per-replica figure for a limit provider '\(provider.name)' has: give tokens_per_minute_per_replica, requests_per_minute_per_replica or concurrent_requests_per_replica to match it"
      )
    }
    return share
  }

  private func standaloneTarget(named name: String, location: FileLocation) -> ScalingTarget {
    ScalingTarget(
      name: name, policyName: name, processType: nil, description: nil, workloadClass: .interactive,
      min: 1, max: Int.max, maxSource: "max_instances", metric: nil, tracking: nil, costPerHourUSD: nil,
      maxCostPerHourUSD: nil, resources: Resources(), rateLimit: nil, scaleUp: nil, scaleDown: nil,
      scaleUpStep: nil, scaleDownStep: nil, scaleUpCooldown: 0, scaleDownCooldown: 0,
      scaleUpStabilization: PolicyDefaults.interactiveScaleUpWindow,
      scaleDownStabilization: PolicyDefaults.interactiveScaleDownWindow,
      drainTimeout: PolicyDefaults.drainTimeout,
      budget: nil, local: nil, location: location)
  }

  // MARK: Autoscaling policies

  private func applyPolicy(
    _ name: RawScalar, _ raw: RawAutoscalingPolicy, to target: inout ScalingTarget,
    references: inout SignalReferences
  ) {
    target.policyName = name.text
    if let up = raw.scaleUp {
      target.scaleUp = validateRule(up, direction: .up, target: &target, references: &references)
    }
    if let down = raw.scaleDown {
      target.scaleDown = validateRule(down, direction: .down, target: &target, references: &references)
    }
    if let breaker = raw.costCircuitBreaker {
      target.budget = validateBreaker(breaker, target: target, references: &references)
    }
    if raw.scaleUp == nil && raw.scaleDown == nil && raw.costCircuitBreaker == nil {
      sink.warning(
        name.location,
        "policy '\(name.text)' has no scale_up, scale_down or cost_circuit_breaker: it changes nothing")
    }
  }

  private enum Direction: String {
    case up = "scale_up"
    case down = "scale_down"
  }

  private func validateRule(
    _ raw: RawRule, direction: Direction, target: inout ScalingTarget, references: inout SignalReferences
  ) -> ScaleRule? {
    var conditions: [Condition] = []
    var holdFor: TimeInterval = 0
    var durationSeen = false
    for item in raw.conditions ?? [] {
      if let rawDuration = item.duration {
        if durationSeen {
          sink.error(rawDuration.location, "\(direction.rawValue) has a second duration item: give one")
        }
        durationSeen = true
        holdFor = duration(rawDuration) ?? 0
      }
      if let rawMetric = item.metric, let condition = parseCondition(rawMetric) {
        conditions.append(condition)
        references.note(
          RawScalar(text: condition.metric, location: rawMetric.location), perReplicaOf: nil,
          usedBy: target.name)
      }
      if item.metric == nil && item.duration == nil {
        sink.error(
          FileLocation(file: file, line: 1, column: 1),
          "an empty condition item in \(direction.rawValue): write '- metric: NAME > VALUE' or '- duration: 10m'"
        )
      }
    }
    var match: ScaleRule.Match = direction == .up ? .any : .all
    if let rawMatch = raw.match {
      if let value = ScaleRule.Match(rawValue: rawMatch.text) {
        match = value
      } else {
        sink.error(rawMatch.location, "match is '\(rawMatch.text)': use any or all")
      }
    }
    for constraint in raw.constraints ?? [] { applyConstraint(constraint, to: &target) }
    if let window = raw.stabilizationWindow, let value = duration(window) {
      switch direction {
      case .up: target.scaleUpStabilization = value
      case .down: target.scaleDownStabilization = value
      }
    }
    var step = 1
    if let action = raw.action {
      switch direction {
      case .up:
        if let add = action.addInstances, let value = count(add, "instances") {
          if value == 0 {
            sink.error(add.location, "add_instances is 0: a scale-up adds at least 1")
          } else {
            step = value
          }
          target.scaleUpStep = value
        }
        if let cooldown = action.cooldown { target.scaleUpCooldown = duration(cooldown) ?? 0 }
        if let misplaced = action.removeInstances {
          sink.error(misplaced.location, "remove_instances belongs in scale_down.action, not scale_up.action")
        }
        if let misplaced = action.drainTimeout {
          sink.error(
            misplaced.location,
            "drain_timeout belongs in scale_down.action: it is how long a removed replica may take to finish")
        }
      case .down:
        if let remove = action.removeInstances, let value = count(remove, "instances") {
          if value == 0 {
            sink.error(remove.location, "remove_instances is 0: a scale-down removes at least 1")
          } else {
            step = value
          }
          target.scaleDownStep = value
        }
        if let cooldown = action.cooldown { target.scaleDownCooldown = duration(cooldown) ?? 0 }
        if let drain = action.drainTimeout {
          target.drainTimeout = duration(drain) ?? PolicyDefaults.drainTimeout
        }
        if let misplaced = action.addInstances {
          sink.error(misplaced.location, "add_instances belongs in scale_up.action, not scale_down.action")
        }
      }
    }
    guard !conditions.isEmpty else {
      if durationSeen {
        sink.error(
          FileLocation(file: file, line: 1, column: 1),
          "\(direction.rawValue) has a duration but no metric conditions")
      }
      return nil
    }
    return ScaleRule(conditions: conditions, match: match, duration: holdFor, step: step)
  }

  private func applyConstraint(_ raw: RawConstraint, to target: inout ScalingTarget) {
    if let rawMax = raw.maxInstances, let value = count(rawMax, "instances") {
      if value == 0 {
        sink.error(rawMax.location, "max_instances is 0: allow at least one replica")
      } else if target.max != Int.max && value > target.max {
        sink.warning(
          rawMax.location,
          "max_instances \(value) has no effect: process '\(target.name)' has max \(target.max)")
      } else {
        target.max = value
        target.maxSource = "max_instances"
      }
      if value < target.min {
        sink.error(
          rawMax.location, "max_instances \(value) is below the minimum \(target.min) of '\(target.name)'")
      }
    }
    if let rawMin = raw.minInstances, let value = count(rawMin, "instances") {
      if value == 0 && target.workloadClass == .interactive {
        sink.error(
          rawMin.location, "min_instances is 0 but '\(target.name)' is interactive, which never goes below 1")
      } else if value == 0 && target.tracking?.kind == .utilization {
        sink.error(
          rawMin.location,
          "min_instances is 0 but '\(target.name)' tracks a utilization, which does not exist at zero replicas: it would never come back; scale to zero on a total such as queue depth (a plain-number target)"
        )
      } else if target.max != Int.max && value > target.max {
        sink.error(
          rawMin.location, "min_instances \(value) is above the maximum \(target.max) of '\(target.name)'")
      } else {
        target.min = value
      }
    }
    if let rawCost = raw.maxCostPerHourUSD, let value = positive(rawCost, "USD per hour") {
      target.maxCostPerHourUSD = min(value, target.maxCostPerHourUSD ?? .infinity)
      if target.costPerHourUSD == nil {
        sink.warning(
          rawCost.location,
          "max_cost_per_hour_usd cannot bind: '\(target.name)' has no cost_per_hour_usd to multiply replicas by"
        )
      }
    }
  }

  private func validateBreaker(
    _ raw: RawCostCircuitBreaker, target: ScalingTarget, references: inout SignalReferences
  ) -> CostCircuitBreaker? {
    guard let rawBudget = raw.dailyBudgetUSD else {
      sink.error(
        raw.action?.location ?? raw.alertThreshold?.location ?? FileLocation(file: file, line: 1, column: 1),
        "cost_circuit_breaker needs daily_budget_usd")
      return nil
    }
    guard let budget = positive(rawBudget, "USD") else { return nil }
    let alert =
      raw.alertThreshold.flatMap { fraction($0, "alert_threshold") } ?? PolicyDefaults.alertThreshold
    let action =
      raw.actionThreshold.flatMap { fraction($0, "action_threshold") } ?? PolicyDefaults.actionThreshold
    if alert > action, let location = raw.alertThreshold?.location ?? raw.actionThreshold?.location {
      sink.error(
        location,
        "alert_threshold (\(alert)) is above action_threshold (\(action)): the alert must come first")
    }
    if let rawAction = raw.action, rawAction.text != "freeze_scaling" {
      sink.error(
        rawAction.location,
        "cost_circuit_breaker action is '\(rawAction.text)': the one action is freeze_scaling (no scale-ups until the next budget day)"
      )
    }
    var timeZone = TimeZone.gmt
    if let rawZone = raw.timezone {
      if let zone = TimeZone(identifier: rawZone.text) {
        timeZone = zone
      } else {
        sink.error(
          rawZone.location,
          "timezone '\(rawZone.text)' is unknown: use an IANA name such as UTC, Europe/Berlin or America/New_York"
        )
      }
    }
    if let metric = raw.costRateMetric { references.note(metric, perReplicaOf: nil, usedBy: target.name) }
    if raw.costRateMetric == nil && target.costPerHourUSD == nil {
      sink.warning(
        rawBudget.location,
        "the budget of '\(target.name)' has nothing to count: set cost_per_hour_usd on the process or cost_rate_metric here"
      )
    }
    return CostCircuitBreaker(
      dailyBudgetUSD: budget, alertThreshold: alert, actionThreshold: action,
      costRateMetric: raw.costRateMetric?.text, timeZone: timeZone)
  }

  private func parseCondition(_ raw: RawScalar) -> Condition? {
    guard let match = raw.text.wholeMatch(of: Self.conditionPattern),
      let op = ComparisonOperator(rawValue: String(match.2))
    else {
      sink.error(
        raw.location,
        "condition '\(raw.text)' is not of the form 'METRIC OP NUMBER[UNIT]' with OP one of > >= < <= == != (for example 'queue_depth > 50' or 'p95_latency > 5s')"
      )
      return nil
    }
    let thresholdText = String(match.3)
    switch Quantity.threshold(thresholdText) {
    case .success(let threshold):
      return Condition(
        metric: String(match.1), op: op, threshold: threshold,
        text: raw.text)
    case .failure(let failure):
      var location = raw.location
      if let range = raw.text.range(of: thresholdText, options: .backwards) {
        location.column += raw.text.distance(from: raw.text.startIndex, to: range.lowerBound)
      }
      sink.error(location, failure.message)
      return nil
    }
  }

  // MARK: Signals and ceilings

  private func validateSignals(
    _ declared: [String: (name: RawScalar, value: RawSignal)]?, references: SignalReferences,
    targets: [ScalingTarget]
  ) -> [SignalSpec] {
    var specs: [SignalSpec] = []
    if let declared {
      for (name, use) in references.uses where declared[name] == nil {
        for location in use.locations {
          let hint = closestMatch(to: name, in: declared.keys).map { "; did you mean '\($0)'?" } ?? ""
          sink.error(location, "signal '\(name)' is not declared under signals\(hint)")
        }
      }
      for (name, entry) in declared.sorted(by: { $0.value.name.location < $1.value.name.location }) {
        var owner = references.uses[name]?.perReplicaOf
        if let flag = entry.value.perReplica {
          guard let value = Bool(flag.text) ?? ["yes": true, "no": false][flag.text] else {
            sink.error(flag.location, "per_replica is '\(flag.text)': use true or false")
            continue
          }
          let users = references.uses[name]?.users ?? []
          if value, users.count > 1 {
            sink.error(
              flag.location,
              "signal '\(name)' is per replica but read by \(users.sorted().joined(separator: " and ")): a per-replica signal belongs to one process"
            )
          } else if value, owner == nil {
            owner = users.first
          }
        }
        if references.uses[name] == nil {
          sink.warning(entry.name.location, "signal '\(name)' is declared but no process or policy reads it")
        }
        specs.append(
          SignalSpec(
            name: name, location: entry.name.location, perReplicaOf: owner,
            source: validateSource(entry.name, entry.value)))
      }
    } else {
      for (name, use) in references.uses.sorted(by: { $0.key < $1.key }) {
        specs.append(SignalSpec(name: name, location: use.locations.first, perReplicaOf: use.perReplicaOf))
      }
    }
    return specs
  }

  private func validateBackend(_ raw: RawBackend) -> BackendSettings? {
    if let command = raw.command {
      guard let argv = argv(command.argv, what: "backend.command.argv", at: raw.location) else { return nil }
      var statusArgv: [String]?
      if let rawStatus = command.statusArgv {
        statusArgv = self.argv(rawStatus, what: "backend.command.status_argv", at: raw.location)
      }
      return .command(
        CommandBackendSettings(
          argv: argv, statusArgv: statusArgv, timeout: command.timeout.flatMap { timeout($0) } ?? 30))
    }
    guard let name = raw.name else {
      sink.error(raw.location, "backend needs local, kubernetes, or command: {argv: [...]}")
      return nil
    }
    switch name.text {
    case "local": return .local
    case "kubernetes": return .kubernetes(KubernetesSettings())
    default:
      sink.error(
        name.location, "backend is '\(name.text)': use local, kubernetes, or command: {argv: [PROGRAM, ...]}")
      return nil
    }
  }

  private func validateLocal(_ raw: RawLocalProcess, process: RawScalar) -> LocalProcessSettings? {
    guard
      let command = argv(
        raw.command, what: "local.command of process '\(process.text)'", at: process.location)
    else { return nil }
    var environment: [String: String] = [:]
    for (key, value) in raw.env?.entries ?? [] {
      if ["CAPSTAN_PROCESS", "CAPSTAN_REPLICA", "PORT"].contains(key.text) {
        sink.error(key.location, "local.env sets \(key.text), which Capstan sets for each replica: remove it")
      }
      environment[key.text] = value.text
    }
    var portBase: Int?
    if let rawPort = raw.portBase, let value = count(rawPort, "a port number") {
      if value < 1 || value > 65_000 {
        sink.error(
          rawPort.location,
          "port_base is \(value): use a port between 1 and 65000, leaving room for the replicas")
      } else {
        portBase = value
      }
    }
    return LocalProcessSettings(
      command: command, environment: environment, workingDirectory: raw.cwd?.text, portBase: portBase)
  }

  func argv(_ raw: RawArgv?, what: String, at location: FileLocation) -> [String]? {
    guard let raw else {
      sink.error(location, "\(what) is missing: give the program and its arguments as a list")
      return nil
    }
    guard !raw.items.isEmpty else {
      if !raw.refused { sink.error(raw.location, "\(what) is empty: name the program to run first") }
      return nil
    }
    return raw.items.map(\.text)
  }

  private func validateSource(_ name: RawScalar, _ raw: RawSignal) -> SignalSource? {
    let sources = raw.sources.compactMap { $0.validate(name, self) }
    if raw.sources.count > 1 {
      sink.error(
        name.location,
        "signal '\(name.text)' has \(raw.sources.map(\.key).joined(separator: " and ")): give it one source")
      return nil
    }
    return sources.first
  }

  /// A value from a fixed set, or an error at its position listing the choices.
  /// The default when the key is absent; nil only when it is there and not one of the choices.
  func choice<Value: RawRepresentable & CaseIterable>(
    _ raw: RawScalar?, _ key: String, default fallback: Value, hint: String = ""
  ) -> Value? where Value.RawValue == String {
    guard let raw else { return fallback }
    if let value = Value(rawValue: raw.text) { return value }
    let names = Value.allCases.map(\.rawValue)
    let listed =
      names.dropLast().joined(separator: ", ") + (names.count > 1 ? " or " : "") + (names.last ?? "")
    sink.error(raw.location, "\(key) is '\(raw.text)': use \(listed)\(hint)")
    return nil
  }

  /// An http:// or https:// URL, or an error naming the signal and what to give instead.
  func httpURL(_ raw: RawScalar?, signal name: RawScalar, reads: String, hint: String) -> RawScalar? {
    guard let raw, raw.text.hasPrefix("http://") || raw.text.hasPrefix("https://") else {
      sink.error(
        raw?.location ?? name.location,
        "signal '\(name.text)' \(reads) but its url is \(raw.map { "'\($0.text)'" } ?? "missing"): \(hint)")
      return nil
    }
    return raw
  }

  func timeout(_ raw: RawScalar) -> TimeInterval? {
    positiveDuration(raw, ifZero: "timeout is \(raw.text): give a source at least 1ms")
  }

  func positiveDuration(_ raw: RawScalar, ifZero message: String? = nil) -> TimeInterval? {
    guard let value = duration(raw) else { return nil }
    guard value > 0 else {
      sink.error(raw.location, message ?? "'\(raw.text)' must be longer than zero")
      return nil
    }
    return value
  }

  /// A process that a scale_down rule may take to zero needs something that can bring its first
  /// replica back: a total to track (utilization does not exist at zero replicas) or a scale_up
  /// rule. With no rule at all, Capstan only keeps it inside [min, max].
  private func checkWakeable(_ target: ScalingTarget, location: FileLocation) {
    guard target.scaleDown != nil else { return }
    if target.tracking?.kind == .averageValue || target.scaleUp != nil { return }
    if target.tracking?.kind == .utilization { return }  // reported where min was set to 0
    sink.error(
      location,
      "'\(target.name)' may scale to 0 (min 0) but nothing can bring it back: give it a plain-number scaling.target on a total such as queue depth, or a scale_up rule"
    )
  }

  private func checkCeilings(
    _ target: ScalingTarget, providers: [ProviderLimits], pools: [GPUPool], location: FileLocation
  ) {
    for ceiling in StaticCeiling.all(for: target, providers: providers, pools: pools)
    where ceiling.replicas < target.min {
      sink.error(
        location,
        "'\(target.name)' has min \(target.min) but \(ceiling.explanation): lower min or raise the limit")
    }
  }

  // MARK: Scalars

  func duration(_ raw: RawScalar) -> TimeInterval? {
    switch Quantity.duration(raw.text) {
    case .success(let value): return value
    case .failure(let failure):
      sink.error(raw.location, failure.message)
      return nil
    }
  }

  private func memory(_ raw: RawScalar) -> Double? {
    switch Quantity.memory(raw.text) {
    case .success(let value): return value
    case .failure(let failure):
      sink.error(raw.location, failure.message)
      return nil
    }
  }

  private func count(_ raw: RawScalar, _ what: String) -> Int? {
    switch Quantity.count(raw.text, what: what) {
    case .success(let value): return value
    case .failure(let failure):
      sink.error(raw.location, failure.message)
      return nil
    }
  }

  private func wholeGPUs(_ raw: RawScalar) -> Int? {
    if let value = Double(raw.text), value >= 0, value != value.rounded() {
      sink.error(
        raw.location,
        "gpu is \(raw.text): GPUs come whole; ask for \(Int(value.rounded(.up))) (a fraction of a GPU is a MIG or time-slicing setting of the device, not a replica count)"
      )
      return nil
    }
    return count(raw, "GPUs")
  }

  private func nonNegative(_ raw: RawScalar, _ unit: String) -> Double? {
    switch Quantity.number(raw.text, what: "write a number in \(unit)") {
    case .success(let value) where value >= 0: return value
    case .success: sink.error(raw.location, "'\(raw.text)' is negative: write 0 or more (\(unit))")
    case .failure(let failure): sink.error(raw.location, failure.message)
    }
    return nil
  }

  private func positive(_ raw: RawScalar, _ unit: String) -> Double? {
    switch Quantity.number(raw.text, what: "write a number in \(unit)") {
    case .success(let value) where value > 0: return value
    case .success: sink.error(raw.location, "'\(raw.text)' must be above zero (\(unit))")
    case .failure(let failure): sink.error(raw.location, failure.message)
    }
    return nil
  }

  private func fraction(_ raw: RawScalar, _ key: String) -> Double? {
    if case .success(let percent) = Quantity.percent(raw.text), percent > 0, percent <= 100 {
      return percent / 100
    }
    guard let value = Double(raw.text), value > 0, value <= 1 else {
      sink.error(
        raw.location, "\(key) is '\(raw.text)': write a fraction between 0 and 1, such as 0.8 (or 80%)")
      return nil
    }
    return value
  }
}

/// Which processes read which signals, so undeclared names and per-replica owners can be checked.
struct SignalReferences {
  struct Use {
    var locations: [FileLocation] = []
    var users: Set<String> = []
    var perReplicaOf: String?
  }

  let declared: Set<String>?
  var uses: [String: Use] = [:]

  mutating func note(_ raw: RawScalar, perReplicaOf owner: String?, usedBy user: String) {
    uses[raw.text, default: Use()].locations.append(raw.location)
    uses[raw.text, default: Use()].users.insert(user)
    if let owner { uses[raw.text, default: Use()].perReplicaOf = owner }
  }
}
