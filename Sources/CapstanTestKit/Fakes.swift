import CapstanBackends
import CapstanCore
import CapstanSignals
import Foundation

/// A signal source whose answer the test sets: a value, an error, or a delay.
public final class FakeSignal: SignalReader, @unchecked Sendable {
  public enum Answer: Sendable {
    case value(Double)
    case failure(String)
    /// Answers after this many seconds, by which time the controller may have given up.
    case slow(TimeInterval, Double)
  }

  public let name: String
  public let timeout: TimeInterval
  private let lock = NSLock()
  private var answer: Answer
  private var reads = 0

  public init(_ name: String, _ answer: Answer, timeout: TimeInterval = 1) {
    self.name = name
    self.answer = answer
    self.timeout = timeout
  }

  public func set(_ answer: Answer) { lock.withLock { self.answer = answer } }
  public var readCount: Int { lock.withLock { reads } }

  public func read(now: Date) async throws -> Double {
    let current = lock.withLock {
      reads += 1
      return answer
    }
    switch current {
    case .value(let value): return value
    case .failure(let message): throw SignalReadError(signal: name, message)
    case .slow(let delay, let value):
      try await Task.sleep(nanoseconds: UInt64(delay * 1e9))
      return value
    }
  }
}

/// A backend that records what it is asked to do, holds the counts itself, and can be told to
/// refuse.
public actor RecordingBackend: ScalingBackend {
  public private(set) var counts: [String: Int]
  public private(set) var applied: [ScaleAction] = []
  public private(set) var shutDown = false
  /// The shares it took, in order.
  public private(set) var published: [WorkerShare] = []
  /// The next this-many shares are refused.
  private var refusedShares = 0
  /// The next this-many actions fail with this message.
  private var refusals: [(remaining: Int, message: String)] = []
  private var unreadable: Set<String> = []

  public init(counts: [String: Int] = [:]) { self.counts = counts }

  public func refuseNext(_ count: Int, _ message: String) { refusals = [(count, message)] }
  public func makeUnreadable(_ process: String) { unreadable.insert(process) }
  public func refuseShares(_ count: Int) { refusedShares = count }
  /// Someone else sets the count, as a person or another Capstan would.
  public func setCount(_ process: String, _ count: Int) { counts[process] = count }

  public func status(of target: ScalingTarget) async throws -> ReplicaStatus {
    if unreadable.contains(target.name) { throw BackendError(process: target.name, "status unavailable") }
    return ReplicaStatus(counts[target.name] ?? 0)
  }

  public func apply(_ action: ScaleAction, to target: ScalingTarget) async throws {
    if let refusal = refusals.first, refusal.remaining > 0 {
      refusals[0].remaining -= 1
      throw BackendError(process: action.process, refusal.message)
    }
    applied.append(action)
    counts[action.process] = action.to
  }

  public func publish(_ share: WorkerShare, for target: ScalingTarget) async throws {
    if refusedShares > 0 {
      refusedShares -= 1
      throw BackendError(process: target.name, "share refused")
    }
    published.append(share)
  }

  public func shutdown() async { shutDown = true }
}
