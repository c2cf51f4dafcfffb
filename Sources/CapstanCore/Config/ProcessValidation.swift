import Foundation

// Processes: scaling bounds, target tracking, resources and rate-limit shares.
extension PolicyValidator {
  func validateProcess(
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
      workloadClass: workloadClass, min: minimum, max: maximum, maxSource: .process,
      metric: scaling.metric?.text, tracking: nil,
      costPerHourUSD: raw.costPerHourUSD.flatMap { nonNegative($0, "USD per hour") },
      maxCostPerHourUSD: nil, resources: validateResources(raw.resources, pools: pools), rateLimit: nil,
      up: DirectionRules(
        stabilization: workloadClass == .batch
          ? PolicyDefaults.batchScaleUpWindow : PolicyDefaults.interactiveScaleUpWindow),
      down: DirectionRules(
        stabilization: workloadClass == .batch
          ? PolicyDefaults.batchScaleDownWindow : PolicyDefaults.interactiveScaleDownWindow),
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
    if let rawSLO = scaling.slo {
      target.slo = validateSLO(rawSLO, scaling: scaling, process: name, references: &references)
    } else {
      for key in [scaling.load, scaling.running, scaling.waiting, scaling.measuredOver].compactMap({ $0 }) {
        sink.warning(key.location, "'\(key.text)' has no effect: process '\(name.text)' has no scaling.slo")
      }
    }
    if let share = raw.rateLimit {
      target.rateLimit = validateRateLimit(share, process: name.text, providers: providers)
    }
    if let local = raw.local { target.local = validateLocal(local, process: name) }
    target.startup = raw.startup.flatMap { duration($0) }
    if let simulation = raw.simulation {
      target.simulation = validateSimulation(
        simulation, process: name, startup: target.startup, variants: raw.variants?.entries.map(\.name.text))
    }
    return target
  }

  func validateTracking(_ scaling: RawProcessScaling, rawTarget: RawScalar, metric: String)
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

  func validateResources(_ raw: RawResources?, pools: [GPUPool]) -> Resources {
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

  func validateRateLimit(_ raw: RawRateLimitShare, process: String, providers: [ProviderLimits])
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
      },
      requestSeconds: raw.requestSeconds.flatMap {
        positiveDuration($0, ifZero: "request_seconds must be above zero: the time one request takes")
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

  func standaloneTarget(named name: String, location: FileLocation) -> ScalingTarget {
    ScalingTarget(
      name: name, policyName: name, processType: nil, description: nil, workloadClass: .interactive,
      min: 1, max: Int.max, maxSource: .constraint, metric: nil, tracking: nil, costPerHourUSD: nil,
      maxCostPerHourUSD: nil, resources: Resources(), rateLimit: nil,
      up: DirectionRules(stabilization: PolicyDefaults.interactiveScaleUpWindow),
      down: DirectionRules(stabilization: PolicyDefaults.interactiveScaleDownWindow),
      drainTimeout: PolicyDefaults.drainTimeout,
      budget: nil, local: nil, location: location)
  }

}
