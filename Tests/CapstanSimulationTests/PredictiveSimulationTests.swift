import CapstanCore
import Foundation
import Testing

@testable import CapstanSimulation

@Suite("Predictive floor in simulation")
struct PredictiveSimulationTests {
  /// Three days from the first midnight after the trace's start: a job a minute, and from 09:00
  /// to 11:00 a job a second; each job takes 10 s on one slot.
  static func dailyBurst() -> Trace {
    let midnight = 86_400 - 1_700_000_000.0.truncatingRemainder(dividingBy: 86_400)
    var arrivals: [Double] = []
    for day in 0..<3 {
      var second = 0.0
      while second < 86_400 {
        arrivals.append(midnight + Double(day) * 86_400 + second)
        second += second >= 9 * 3600 && second < 11 * 3600 ? 1 : 60
      }
    }
    return jobs(arrivals, work: 10)
  }

  static func worker(predictive: Bool) throws -> Policy {
    try policy(
      """
      controller: {interval: 15s}
      processes:
        w:
          class: batch
          startup: 2m
          scaling: {metric: q, target: 1, min: 0, max: 20}
      \(predictive ? "    predictive: {signal: rate, per_replica: 0.1}" : "")
          simulation:
            slots: 1
            signals: {q: queue_depth, rate: request_rate}
            slo: {latency: queue_wait, bound: 30s, target: 99%}
      autoscaling:
        w:
          scale_up: {stabilization_window: 0s}
      """)
  }

  @Test("learned from the first day, the floor has replicas ready before the next mornings' bursts")
  func floorBeatsTheBurst() throws {
    let trace = Self.dailyBurst()
    var events: [AuditEvent] = []
    let predictive = try Simulator(policy: Self.worker(predictive: true), traces: ["w": trace]).run {
      events.append($0)
    }
    let reactive = try Simulator(policy: Self.worker(predictive: false), traces: ["w": trace]).run()
    let with = try #require(predictive.processes.first)
    let without = try #require(reactive.processes.first)
    #expect(with.requests == without.requests && with.failed == 0)
    #expect(with.sloAttainment > without.sloAttainment)
    // Ticks fall 5 s past each quarter minute (the trace starts at 22:13:20): the floor asks at
    // the first tick that looks (startup + one tick) past 09:00 on the second and third days.
    let midnight = trace.start.addingTimeInterval(
      86_400 - 1_700_000_000.0.truncatingRemainder(dividingBy: 86_400))
    let floorUps = events.filter { $0.kind == .scaleUp && $0.reason == .predictiveFloor }
    let mornings = [1, 2].map { midnight.addingTimeInterval(Double($0) * 86_400 + 9 * 3600 - 130) }
    #expect(floorUps.map(\.time) == mornings)
    #expect(floorUps.allSatisfy { $0.to == 10 && $0.forecast?.source == "learned from what it sees" })
    // Off with a warning until a whole day has been seen, on from then.
    let switches = events.filter {
      $0.reason == .predictiveFloor && $0.kind != .blocked && $0.kind != .scaleUp
    }
    #expect(switches.map(\.kind) == [.warning, .predictiveFloor])
    #expect(switches.last?.time == trace.start.addingTimeInterval(86_400))
  }

  @Test("a predictive signal the simulation section does not map is refused, by name")
  func unmappedPredictiveSignal() throws {
    let policy = try policy(
      """
      processes:
        w:
          startup: 2m
          scaling: {metric: q, target: 1, min: 1, max: 4}
          predictive: {signal: rate, per_replica: 1}
          simulation:
            slots: 1
            signals: {q: queue_depth}
            slo: {latency: queue_wait, bound: 30s}
      """)
    #expect(throws: SimulationError.unmappedSignal(process: "w", signal: "rate")) {
      try Simulator(policy: policy, traces: ["w": jobs([0], work: 1)])
    }
  }
}
