import Foundation
import Testing

@testable import CapstanCore

@Suite("Saved state kept in the engine's order")
struct ProcessTableTests {
  private func policy(_ order: [String]) throws -> Policy {
    var yaml = "processes:\n"
    for name in order {
      yaml +=
        "  \(name): {cost_per_hour_usd: 2, scaling: {metric: q_\(name), target: 10, min: 1, max: 9}}\n"
    }
    yaml += "autoscaling:\n"
    for name in order {
      yaml +=
        "  \(name): {scale_down: {stabilization_window: 60s}, cost_circuit_breaker: {daily_budget_usd: 100}}\n"
    }
    return try loadPolicy(yaml)
  }

  /// Signals that move each target differently, tick by tick.
  private func inputs(_ tick: Int) -> EngineInputs {
    EngineInputs(
      signals: [
        "q_a": Double(10 + tick * 7 % 60), "q_b": Double(80 - tick * 5 % 70), "q_c": Double(tick % 3 * 20),
      ],
      replicas: ["a": ReplicaStatus(2 + tick % 3), "b": ReplicaStatus(4), "c": ReplicaStatus(1 + tick % 2)])
  }

  @Test("a state written by one policy order and decided by another gives what one order gives throughout")
  func reorderedEngine() throws {
    let first = ScalingEngine(policy: try policy(["a", "b", "c"]))
    let reordered = ScalingEngine(policy: try policy(["c", "a", "b"]))
    var straight = EngineState()
    var switched = EngineState()
    var straightEvents: [AuditEvent] = []
    var switchedEvents: [AuditEvent] = []
    for tick in 0..<40 {
      let now = t0.addingTimeInterval(Double(tick) * 15)
      let (one, nextStraight) = first.decide(inputs(tick), state: straight, now: now)
      straight = nextStraight
      straightEvents += one.events
      // The second half runs on the other engine: its slots are in another order.
      let engine = tick < 20 ? first : reordered
      let (two, nextSwitched) = engine.decide(inputs(tick), state: switched, now: now)
      switched = nextSwitched
      switchedEvents += two.events
    }
    #expect(straightEvents.count > 10)
    let byProcess: (AuditEvent, AuditEvent) -> Bool = {
      ($0.time, $0.process, $0.kind.rawValue) < ($1.time, $1.process, $1.kind.rawValue)
    }
    #expect(straightEvents.sorted(by: byProcess) == switchedEvents.sorted(by: byProcess))
    #expect(straight == switched)
    #expect(Set(switched.targets.keys) == ["a", "b", "c"])
  }

  @Test("it is saved as the dictionary it stands for, and a name the engine does not know is kept")
  func savedForm() throws {
    var table = ProcessTable<Int>(["x": 1, "w": 2])
    table.arrange(TargetOrder(["w", "v"]))
    table["u"] = 3
    #expect(table["w"] == 2 && table["x"] == 1 && table["u"] == 3 && table["v"] == nil)
    #expect(table.keys == ["w", "x", "u"])
    #expect(table.slots.first == 2)
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    #expect(
      String(decoding: try encoder.encode(table), as: UTF8.self)
        == String(decoding: try encoder.encode(["u": 3, "w": 2, "x": 1]), as: UTF8.self))
    let read = try JSONDecoder().decode(ProcessTable<Int>.self, from: try encoder.encode(table))
    #expect(read == table)
    table["x"] = nil
    #expect(table.count == 2 && table != read && !table.keys.contains("x"))
  }
}
