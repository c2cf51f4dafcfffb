import CapstanCore
import CapstanKubernetes
import Foundation
import Logging

/// Scales Deployments, StatefulSets and custom resources through the API server's `/scale`
/// subresource. A write carries the resourceVersion that was read, so a change made by someone
/// else in between is a conflict, never overwritten. Each action, and each failed one, is also a
/// core/v1 Event on the workload. Kubernetes drains the pods itself (their grace period and
/// preStop hooks), and stopping Capstan leaves the workloads as they are.
///
/// With `watch`, Deployments and StatefulSets are read from a cache fed by one LIST and WATCH
/// per kind and namespace (`WorkloadInformer`), so a steady tick sends nothing; custom
/// resources, and a target whose write met a conflict, are read directly.
public actor KubernetesBackend: ScalingBackend {
  private let api: WorkloadAPI
  private let namespace: String
  private let leader: (any LeaderGate)?
  /// Who writes the Events (the leader election identity, or the host).
  private let reporter: String
  private let logger: Logger
  /// The Scale and workload last read per target: the next write carries this resourceVersion.
  private var scales: [String: Scale] = [:]
  private var summaries: [String: WorkloadSummary] = [:]
  private var annotations: [String: [String: String]] = [:]
  private let watch: Bool
  private var informers: [String: WorkloadInformer] = [:]
  /// Targets whose last write was refused as stale: read directly until a read succeeds, since
  /// the cache may not have the change that made it stale yet.
  private var readDirectly: Set<String> = []

  public init(
    api: WorkloadAPI, namespace: String, leader: (any LeaderGate)?, reporter: String, logger: Logger,
    watch: Bool = false
  ) {
    self.api = api
    self.namespace = namespace
    self.leader = leader
    self.reporter = reporter
    self.logger = logger
    self.watch = watch
  }

  /// The cache for a workload's kind and namespace, started on first use; nil for a kind that
  /// is read directly.
  private func informer(_ workload: KubernetesWorkload, _ namespace: String) async throws -> WorkloadInformer?
  {
    guard watch else { return nil }
    switch workload.kind {
    case .deployment, .statefulSet: break
    case .custom: return nil
    }
    let key = workload.collectionPath(namespace: namespace)
    if let informer = informers[key] { return informer }
    let informer = WorkloadInformer(
      kind: workload.kind, namespace: namespace, client: api.client, logger: logger)
    try await informer.start()
    if let raced = informers[key] {
      informer.stop()
      return raced
    }
    informers[key] = informer
    return informer
  }

  private func workload(_ target: ScalingTarget) throws -> (KubernetesWorkload, String) {
    guard let workload = target.kubernetes else {
      throw BackendError(
        process: target.name, "no Kubernetes workload: add kubernetes: {kind: ..., name: ...}")
    }
    return (workload, workload.namespace ?? namespace)
  }

  public func status(of target: ScalingTarget) async throws -> ReplicaStatus {
    let (workload, namespace) = try workload(target)
    do {
      if !readDirectly.contains(target.name), let informer = try await informer(workload, namespace) {
        switch informer.read(workload.name) {
        case .success(let entry):
          scales[target.name] = entry.scale
          summaries[target.name] = entry.summary
          annotations[target.name] = entry.annotations
          return ReplicaStatus(current: entry.scale.desired, ready: entry.summary.readyReplicas ?? 0)
        case .failure(.notFound):
          throw BackendError(
            process: target.name,
            "\(workload) in \(namespace): not found (the watch of its kind has no such object)")
        case .failure(let why):
          throw BackendError(process: target.name, "\(workload) in \(namespace): \(why)")
        }
      }
      let scale = try await api.scale(of: workload, namespace: namespace)
      let summary = try await api.summary(of: workload, namespace: namespace)
      scales[target.name] = scale
      summaries[target.name] = summary
      readDirectly.remove(target.name)
      // Deployments and StatefulSets leave readyReplicas out when it is 0; a custom resource
      // may not have it at all, and then its Scale's observed replicas is the best there is.
      let ready: Int
      if case .custom = workload.kind {
        ready = summary.readyReplicas ?? scale.status?.replicas ?? 0
      } else {
        ready = summary.readyReplicas ?? 0
      }
      return ReplicaStatus(current: scale.desired, ready: ready)
    } catch let error as KubernetesAPIError {
      throw BackendError(process: target.name, "\(workload) in \(namespace): \(error)")
    }
  }

  /// The annotation that carries a rate-limited workload's share per replica, as JSON: for
  /// operators and sidecars; a worker in a pod reads `/shares` from Capstan's Service, since a
  /// Deployment's annotations do not reach its pods without a rollout.
  public static let shareAnnotation = "capstan.io/rate-limit-share"

  public func publish(_ share: WorkerShare, for target: ScalingTarget) async throws {
    let (workload, namespace) = try workload(target)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let value = String(decoding: try encoder.encode(share), as: UTF8.self)
    // Written only on change: the watched workload may carry it already (after a restart).
    guard annotations[target.name]?[Self.shareAnnotation] != value else { return }
    do {
      try await api.annotate(workload, namespace: namespace, key: Self.shareAnnotation, value: value)
      annotations[target.name]?[Self.shareAnnotation] = value
    } catch {
      throw BackendError(process: target.name, "\(workload) in \(namespace): \(error)")
    }
  }

  public func apply(_ action: ScaleAction, to target: ScalingTarget) async throws {
    let (workload, namespace) = try workload(target)
    // Checked at the moment of writing, so a leader that lost its lease mid-tick writes nothing.
    if let leader, !leader.isLeading(at: Date()) {
      throw BackendError(process: target.name, "not the leader any more: another Capstan acts")
    }
    guard let read = scales[target.name] else {
      throw BackendError(process: target.name, "\(workload) was not read this tick: reading it first")
    }
    do {
      let written = try await api.setScale(read, replicas: action.to, of: workload, namespace: namespace)
      scales[target.name] = written
      if let informer = try? await informer(workload, namespace) {
        informer.wrote(written, of: workload.name)
      }
      // Off the tick's path: an Event is for people reading later, and the next action need not
      // wait for it. Named by the time of the write, so Events sort in the order of the writes.
      let at = Date()
      let summary = summaries[target.name]
      Task {
        await self.event(
          target, workload, namespace, reason: "SuccessfulRescale",
          message: "New size: \(action.to); reason: \(action.reason.rawValue): \(action.detail)",
          warning: false,
          summary: summary, at: at)
      }
    } catch let error as KubernetesAPIError {
      scales[target.name] = nil
      if error.isConflict {
        readDirectly.insert(target.name)
        throw BackendError(
          process: target.name,
          "\(workload) in \(namespace) changed since it was read (409 \(error.reason): \(error.message))",
          conflict: true)
      }
      await event(
        target, workload, namespace, reason: "FailedRescale",
        message:
          "New size: \(action.to); reason: \(action.reason.rawValue); error: \(error.reason) \(error.message)",
        warning: true, summary: summaries[target.name], at: Date())
      throw BackendError(process: target.name, "\(workload) in \(namespace): \(error)")
    }
  }

  private func event(
    _ target: ScalingTarget, _ workload: KubernetesWorkload, _ namespace: String, reason: String,
    message: String,
    warning: Bool, summary: WorkloadSummary?, at: Date
  ) async {
    guard let summary else { return }
    do {
      try await api.recordEvent(
        on: workload, summary: summary, namespace: namespace, reason: reason, message: message,
        warning: warning,
        reporter: reporter, now: at)
    } catch {
      logger.warning(
        "cannot write the Event; scaling goes on",
        metadata: ["process": "\(target.name)", "error": "\(error)"])
    }
  }

  public func warnings(for target: ScalingTarget) async -> [String] {
    guard let summary = summaries[target.name], let workload = target.kubernetes else { return [] }
    guard target.drainTimeout > summary.terminationGracePeriod else { return [] }
    return [
      "drain_timeout is \(Int(target.drainTimeout))s but \(workload)'s pods get \(Int(summary.terminationGracePeriod))s (terminationGracePeriodSeconds) before Kubernetes kills them: raise terminationGracePeriodSeconds in the pod template, or lower drain_timeout"
    ]
  }

  /// Workloads keep running when Capstan stops; there is nothing of Capstan's to drain. The
  /// watches are closed.
  public func shutdown() async {
    for informer in informers.values { informer.stop() }
  }
}
