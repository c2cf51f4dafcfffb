import CapstanBackends
import CapstanController
import CapstanCore
import CapstanRuntime
import Foundation
import Logging
import MetricsTestKit

/// A live `Controller` on a manual clock, for tests: a policy from YAML, fake signals, a backend
/// of the test's choosing (a `RecordingBackend` unless it says otherwise), its audit log and
/// saved state in a scratch folder, and metrics it can read back.
public struct ControllerHarness<Backend: ScalingBackend> {
  public let folder: URL
  public let controller: Controller
  public let backend: Backend
  public let metrics: TestMetrics
  public let signals: [String: FakeSignal]

  /// The policy most controller tests need: one queue worker tracking `queue`.
  public static var workerPolicy: String {
    """
    processes:
      worker:
        scaling: {metric: queue, target: 10, min: 1, max: 8}
    autoscaling:
      worker: {scale_down: {stabilization_window: 0s}}
    """
  }

  public init(
    yaml: String, signals: [FakeSignal], backend: Backend, leader: (any LeaderGate)? = nil,
    label: String = "controller"
  ) throws {
    folder = try scratchDirectory(label)
    let policy = try PolicyLoader.load(yaml: yaml, file: "p.yaml").policy
    self.backend = backend
    metrics = TestMetrics()
    let fakes = signals
    self.signals = Dictionary(uniqueKeysWithValues: signals.map { ($0.name, $0) })
    controller = Controller(
      policy: policy, baseDirectory: folder, backend: backend,
      audit: try AuditLogFile(path: folder.appendingPathComponent("audit.jsonl").path),
      store: try StateStore(directory: folder, name: "state.json"), state: ControllerState(), mode: .live,
      metrics: ControllerMetrics(factory: metrics), logger: Logger(label: "test"), leader: leader,
      makeReaders: { _, _ in fakes })
  }

  /// The audit log's records so far.
  public func records() -> [[String: Any]] {
    let text = (try? String(contentsOf: folder.appendingPathComponent("audit.jsonl"), encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  public func savedState() throws -> ControllerState? {
    try StateStore<ControllerState>(directory: folder, name: "state.json").load()
  }

  /// One tick at `second` seconds past a fixed start.
  public func tick(_ second: TimeInterval) async {
    await controller.tick(now: Date(timeIntervalSince1970: 1_700_000_000 + second))
  }

  /// One tick, and where it left a history read unlearned (a tick waits only so long for one,
  /// and a loaded machine reads slowly; the read may arrive just after the tick stopped
  /// waiting), another at the same time once the read has arrived: what the first tick
  /// decides when its history source answers at once.
  public func tickWithHistory(_ second: TimeInterval) async {
    await tick(second)
    guard await controller.historyUnlearned else { return }
    _ = await eventually(timeout: 120) { await !controller.historyReading }
    await tick(second)
  }
}

extension ControllerHarness where Backend == RecordingBackend {
  /// With a `RecordingBackend` that starts each process at `counts`.
  public init(
    signals: [FakeSignal], counts: [String: Int] = ["worker": 1], yaml: String? = nil,
    leader: (any LeaderGate)? = nil
  ) throws {
    try self.init(
      yaml: yaml ?? Self.workerPolicy, signals: signals, backend: RecordingBackend(counts: counts),
      leader: leader)
  }
}
