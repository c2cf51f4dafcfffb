/// Why a replica count changed, or why a wanted change did not happen. The raw values are the
/// `reason` codes of audit records.
public enum ScaleReason: String, Sendable, Codable, CaseIterable {
  case targetTracking = "target_tracking"
  case scaleUpRule = "scale_up_rule"
  case scaleDownRule = "scale_down_rule"
  case minInstances = "min_instances"
  case maxInstances = "max_instances"
  case stepSize = "step_size"
  case cooldown
  case stabilization
  case costCeiling = "cost_ceiling"
  case rateLimitCeiling = "rate_limit_ceiling"
  case gpuPool = "gpu_pool"
  case budgetFrozen = "budget_frozen"
  /// The process's share of a `budgets:` budget's max_replicas or max_gpus.
  case budgetCap = "budget_cap"
  case signalMissing = "signal_missing"
  /// The count that ran before a restart, restored because its replicas stopped with Capstan.
  case restore
  /// Replicas still starting would have turned the utilization arithmetic the other way.
  case replicasNotReady = "replicas_not_ready"
  case signalRestored = "signal_restored"
  case budgetThreshold = "budget_threshold"
  case budgetDay = "budget_day"
  /// The backend refused or failed an action; the detail has its words.
  case backendError = "backend_error"
  /// A rate-limited process's share could not be published, so no process on its provider
  /// scales up until it is.
  case shareUnpublished = "share_unpublished"
  /// The policy file was reloaded (SIGHUP).
  case policyReload = "policy_reload"
  /// Someone else changed the replica count.
  case externalChange = "external_change"
  /// The policy's drain_timeout is longer than the workload lets a replica drain.
  case drainTimeout = "drain_timeout"
  /// Leader election on a Kubernetes Lease.
  case leaderElection = "leader_election"
  /// The predictive floor raised the count, held a scale-down, or turned on or off.
  case predictiveFloor = "predictive_floor"
  /// Sized from the process's SLOs and its learned latency models.
  case slo
  /// Sized by the band rule on measured latency, while the latency models are not ready.
  case modelNotReady = "model_not_ready"
}

extension ScalingTarget {
  /// The reasons a `blocked` record of this process can carry, given what its policy sets: the
  /// limits every process has, missing data, replicas not ready, a refused backend call, and
  /// each ceiling, budget, floor or SLO hold only where the policy gives the process one.
  public var blockingReasons: [ScaleReason] {
    var reasons: [ScaleReason] = [
      .maxInstances, .stepSize, .cooldown, .stabilization, .signalMissing, .replicasNotReady, .backendError,
    ]
    if maxCostPerHourUSD != nil { reasons.append(.costCeiling) }
    if rateLimit != nil { reasons += [.rateLimitCeiling, .shareUnpublished] }
    if resources.gpuPool != nil { reasons.append(.gpuPool) }
    if budget != nil || budgetName != nil { reasons.append(.budgetFrozen) }
    if budgetName != nil { reasons.append(.budgetCap) }
    if predictive != nil { reasons.append(.predictiveFloor) }
    if slo != nil { reasons += [.slo, .modelNotReady] }
    return reasons
  }
}
