import CapstanCore
import Foundation

/// What the controller acts through. One file per backend behind this protocol.
public protocol ScalingBackend: Sendable {
  /// The replicas of a target as the backend sees them now.
  func status(of target: ScalingTarget) async throws -> ReplicaStatus
  /// Carries out one action; returns when the backend has accepted it (a drain may go on).
  func apply(_ action: ScaleAction, to target: ScalingTarget) async throws
  /// Stops what this backend started, draining replicas as a scale-down would.
  func shutdown() async
  /// Where the backend works against the policy (a drain the workload cuts short), for the log
  /// and the audit log at start.
  func warnings(for target: ScalingTarget) async -> [String]
  /// Whether the replicas outlive the controller (a Kubernetes workload, a command's fleet) or
  /// stop with it (the local supervisor): then a restart restores the count that ran before.
  var replicasOutliveController: Bool { get }
  /// Whether the backend restarts replicas itself and so knows which keep exiting (the local
  /// supervisor); elsewhere the platform does (the kubelet), and Capstan exports no count.
  var countsCrashLoops: Bool { get }
  /// Replicas that keep exiting and are not counted ready, for the controller's metrics.
  func crashLoopingReplicas(of target: ScalingTarget) async -> Int
  /// Tells the target's replicas their new share of its provider's limits where the backend
  /// has a place for it (a Kubernetes annotation); the share file and `/shares` are the
  /// controller's own.
  func publish(_ share: WorkerShare, for target: ScalingTarget) async throws
}

extension ScalingBackend {
  public func warnings(for target: ScalingTarget) async -> [String] { [] }
  public var replicasOutliveController: Bool { true }
  public var countsCrashLoops: Bool { false }
  public func crashLoopingReplicas(of target: ScalingTarget) async -> Int { 0 }
  public func publish(_ share: WorkerShare, for target: ScalingTarget) async throws {}
}

/// Whether this process may act now; with leader election, only the leader may.
public protocol LeaderGate: Sendable {
  func isLeading(at now: Date) -> Bool
}

/// A backend's refusal, with what to do about it.
public struct BackendError: Error, CustomStringConvertible, Sendable {
  public var process: String
  public var message: String
  /// The write carried a stale resourceVersion: someone else changed the target since it was
  /// read. Read it again and decide again.
  public var conflict: Bool

  public init(process: String, _ message: String, conflict: Bool = false) {
    self.process = process
    self.message = message
    self.conflict = conflict
  }

  public var description: String { "\(process): \(message)" }
}

/// Decides without acting: actions are logged and remembered, so the next tick sees the count
/// it would have set, and nothing is started or stopped. A wrapper at the backend boundary, so
/// the engine and the loop run exactly as they do live.
public actor DryRunBackend: ScalingBackend {
  private let wrapped: any ScalingBackend
  private var counts: [String: Int] = [:]

  public init(wrapping backend: any ScalingBackend) { self.wrapped = backend }

  /// What a dry run pretends to have set is forgotten when it stops.
  public nonisolated var replicasOutliveController: Bool { false }

  public func status(of target: ScalingTarget) async throws -> ReplicaStatus {
    if let count = counts[target.name] { return ReplicaStatus(count) }
    return try await wrapped.status(of: target)
  }

  public func apply(_ action: ScaleAction, to target: ScalingTarget) async throws {
    counts[action.process] = action.to
  }

  public func warnings(for target: ScalingTarget) async -> [String] { await wrapped.warnings(for: target) }

  public func shutdown() async {}
}
