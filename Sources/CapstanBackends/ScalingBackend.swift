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
}

/// A backend's refusal, with what to do about it.
public struct BackendError: Error, CustomStringConvertible, Sendable {
  public var process: String
  public var message: String

  public init(process: String, _ message: String) {
    self.process = process
    self.message = message
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

  public func status(of target: ScalingTarget) async throws -> ReplicaStatus {
    if let count = counts[target.name] { return ReplicaStatus(count) }
    return try await wrapped.status(of: target)
  }

  public func apply(_ action: ScaleAction, to target: ScalingTarget) async throws {
    counts[action.process] = action.to
  }

  public func shutdown() async {}
}
