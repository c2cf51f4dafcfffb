import CapstanCore
import Foundation

/// Decides for KEDA to act: `capstan run --keda-scaler` wraps the Kubernetes backend in this,
/// so that the engine and the loop run as they do live, but a decision is kept here for KEDA's
/// external-scaler calls to read instead of being written to `/scale`.
///
/// The current count a tick sees is the count Capstan last decided, as `/scale` would show it
/// after a write of its own; before the first decision, and for the ready count always, the
/// workload is read through the wrapped backend.
public actor KEDABackend: ScalingBackend {
  private let wrapped: any ScalingBackend
  /// Per process, the count KEDA is told: the last decision, else the count last read.
  private var counts: [String: Int] = [:]
  private var watchers: [String: [UUID: AsyncStream<Int>.Continuation]] = [:]
  private var finished = false

  public init(wrapping backend: any ScalingBackend) { self.wrapped = backend }

  public func status(of target: ScalingTarget) async throws -> ReplicaStatus {
    var read = try await wrapped.status(of: target)
    if let decided = counts[target.name] {
      read.current = decided
    } else {
      set(target.name, read.current)
    }
    return read
  }

  public func apply(_ action: ScaleAction, to target: ScalingTarget) async throws {
    set(action.process, action.to)
  }

  /// The count KEDA is told for a process; nil before its first tick.
  public func count(of process: String) -> Int? { counts[process] }

  /// The process's count now, where there is one, then each change, until `finish()`.
  public func changes(of process: String) -> AsyncStream<Int> {
    let (stream, continuation) = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))
    if finished {
      continuation.finish()
      return stream
    }
    let id = UUID()
    watchers[process, default: [:]][id] = continuation
    if let count = counts[process] { continuation.yield(count) }
    continuation.onTermination = { _ in Task { await self.forget(process, id) } }
    return stream
  }

  /// Ends every stream, so that a server's graceful shutdown is not held by KEDA's open ones.
  public func finish() {
    finished = true
    for continuation in watchers.values.flatMap(\.values) { continuation.finish() }
    watchers = [:]
  }

  /// Ends KEDA's streams, and the wrapped backend's watches; the workloads are KEDA's.
  public func shutdown() async {
    finish()
    await wrapped.shutdown()
  }

  public func warnings(for target: ScalingTarget) async -> [String] { await wrapped.warnings(for: target) }

  public func publish(_ share: WorkerShare, for target: ScalingTarget) async throws {
    try await wrapped.publish(share, for: target)
  }

  private func set(_ process: String, _ count: Int) {
    guard counts[process] != count else { return }
    counts[process] = count
    for continuation in watchers[process, default: [:]].values { continuation.yield(count) }
  }

  private func forget(_ process: String, _ id: UUID) {
    watchers[process]?[id] = nil
  }
}
