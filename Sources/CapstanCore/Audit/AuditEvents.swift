import Foundation

/// The audit events the live controller writes beside the engine's own, each made in one place.
extension AuditEvent {
  /// An event of the whole controller (process `*`): leadership, policy reloads.
  public static func controller(_ kind: AuditEventKind, reason: ScaleReason, detail: String, at time: Date)
    -> AuditEvent
  {
    AuditEvent(
      time: time, process: "*", kind: kind, from: nil, to: nil, reason: reason, detail: detail, signals: [],
      budget: nil, costPerHourUSD: nil)
  }

  /// A backend's warning about one process (a drain the workload cuts short); no count changes.
  public static func warning(process: String, replicas: Int?, detail: String, at time: Date) -> AuditEvent {
    AuditEvent(
      time: time, process: process, kind: .warning, from: replicas, to: replicas, reason: .drainTimeout,
      detail: detail, signals: [], budget: nil, costPerHourUSD: nil)
  }

  /// An action the backend did not carry out, with its words.
  public static func refused(
    _ action: ScaleAction, detail: String, signals: [(name: String, value: Double?)], costPerHourUSD: Double?,
    at time: Date
  ) -> AuditEvent {
    AuditEvent(
      time: time, process: action.process, kind: .blocked, from: action.from, to: action.to,
      reason: .backendError, detail: detail, signals: signals, budget: nil, costPerHourUSD: costPerHourUSD)
  }

  /// A process the reloaded policy no longer has, drained to zero; it costs 0 after, where it
  /// had a cost.
  public static func dropped(of target: ScalingTarget, from replicas: Int, detail: String, at time: Date)
    -> AuditEvent
  {
    AuditEvent(
      time: time, process: target.name, kind: .scaleDown, from: replicas, to: 0, reason: .policyReload,
      detail: detail, signals: [], budget: nil, costPerHourUSD: target.costPerHourUSD.map { _ in 0 })
  }
}
