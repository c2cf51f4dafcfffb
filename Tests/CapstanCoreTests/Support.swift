import Foundation
import Testing

@testable import CapstanCore

/// 2023-11-14T22:13:20Z, a fixed start for engine tests.
let t0 = Date(timeIntervalSince1970: 1_700_000_000)

func fixturesURL() -> URL {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
}

func loadPolicy(_ yaml: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> Policy {
  do {
    return try PolicyLoader.load(yaml: yaml, file: "test.yaml").policy
  } catch {
    Issue.record("policy did not load:\n\(error)", sourceLocation: sourceLocation)
    throw error
  }
}

/// What the loader says of a policy it must refuse, read as `p.yaml`. A policy that loads is
/// recorded as an issue and gives "".
func refusal(_ yaml: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> String {
  do {
    _ = try PolicyLoader.load(yaml: yaml, file: "p.yaml")
    Issue.record("the policy loaded, but should have been refused", sourceLocation: sourceLocation)
    return ""
  } catch {
    return error.description
  }
}

/// Drives the engine tick by tick, applying its actions the way a driver would.
struct EngineHarness {
  let engine: ScalingEngine
  var state = EngineState()
  var replicas: [String: Int]
  /// Ready replicas where fewer than all are ready; a process absent here is all ready.
  var ready: [String: Int] = [:]
  var events: [AuditEvent] = []

  init(_ policy: Policy, replicas: [String: Int]) {
    self.engine = ScalingEngine(policy: policy)
    self.replicas = replicas
  }

  @discardableResult
  mutating func tick(at seconds: TimeInterval, _ signals: [String: Double]) -> TickDecision {
    var status: [String: ReplicaStatus] = [:]
    for (name, count) in replicas {
      status[name] = ReplicaStatus(current: count, ready: ready[name] ?? count)
    }
    let inputs = EngineInputs(signals: signals, replicas: status)
    let (decision, next) = engine.decide(inputs, state: state, now: t0.addingTimeInterval(seconds))
    state = next
    for action in decision.actions { replicas[action.process] = action.to }
    events += decision.events
    return decision
  }

  func events(_ kind: AuditEventKind) -> [AuditEvent] { events.filter { $0.kind == kind } }
}
