import CapstanCore
import CapstanTestKit
import Foundation
import Logging
import Testing

@testable import CapstanReplay

@Suite("Replay")
struct ReplayTests {
  static let policy = """
    controller: {interval: 15s, staleness: 1m}
    processes:
      model:
        cost_per_hour_usd: 2
        scaling: {metric: gpu, target: 50%, min: 1, max: 10}
    autoscaling:
      model: {scale_down: {stabilization_window: 0s}}
    """

  func replay(_ csv: String, start: [String: Int] = [:]) throws -> ReplayResult {
    let policy = try PolicyLoader.load(yaml: Self.policy, file: "p.yaml").policy
    let metrics = try RecordedMetrics.parseCSV(csv, file: "m.csv")
    return try Replay(policy: policy, options: .init(start: start), logger: Logger(label: "test")).run(
      metrics)
  }

  @Test("starts at the recorded replica count and rescales per-replica signals to its own")
  func rescalesPerReplicaSignals() throws {
    // Recorded: 4 replicas at 100% each. The replay scales to 8, after which the same load reads 50%.
    let result = try replay(
      """
      timestamp,gpu,model.replicas
      2023-11-16T00:00:00Z,100,4
      2023-11-16T00:00:30Z,100,4
      """)
    let kinds: [AuditEventKind] = result.events.map(\.kind)
    #expect(kinds == [.scaleUp])
    #expect(result.events.first?.from == 4)
    #expect(result.events.first?.to == 8)
    #expect(result.processes.first?.maxReplicas == 8)
    let recorded: Double = result.processes.first?.recordedReplicaHours ?? 0
    let expected: Double = 4.0 * 30 / 3600
    #expect(abs(recorded - expected) < 1e-9)
  }

  @Test("a .ready column keeps the recording's starting replicas starting, and the engine holds")
  func readyColumn() throws {
    // 8 recorded replicas, 4 of them still loading, the ready ones at 80% against 50%: counting
    // the 4 loading at 0% gives 40%, a flip of direction, so 8 holds rather than going to 7.
    let result = try replay(
      """
      timestamp,gpu,model.replicas,model.ready
      2023-11-16T00:00:00Z,80,8,4
      2023-11-16T00:00:15Z,80,8,4
      """)
    #expect(result.events.map(\.kind) == [.blocked])
    #expect(result.events.first?.reason == .replicasNotReady)
    #expect(result.processes.first?.maxReplicas == 8)
    // Once they are ready, the same 80% is an overload of 8: 8 × 80 / 50 → 13, held at max.
    let ready = try replay("timestamp,gpu,model.replicas,model.ready\n2023-11-16T00:00:00Z,80,8,8\n")
    #expect(ready.events.first?.kind == .scaleUp)
    #expect(ready.events.first?.to == 10)
  }

  @Test("an interval under a second is refused")
  func shortInterval() throws {
    let policy = try PolicyLoader.load(yaml: Self.policy, file: "p.yaml").policy
    let metrics = try RecordedMetrics.parseCSV("timestamp,gpu\n2023-11-16T00:00:00Z,50\n", file: "m.csv")
    #expect(throws: ReplayError.badInterval) {
      try Replay(policy: policy, options: .init(interval: 0.001), logger: Logger(label: "test")).run(metrics)
    }
    #expect(ReplayError.badInterval.description == "the interval must be at least 1s")
  }

  @Test("a recording whose span needs more ticks than the bound is refused before any tick runs")
  func tickBound() {
    #expect {
      try replay("timestamp,gpu\n2023-11-16T00:00:00Z,50\n2123-11-16T00:00:00Z,50\n")
    } throws: { error in
      "\(error)".contains("more than the 10000000 a replay takes")
    }
  }

  @Test("a gap of hours in a recording is reported, and its ticks see every signal missing")
  func longGap() throws {
    let result = try replay("timestamp,gpu\n2023-11-16T00:00:00Z,50\n2023-11-16T05:00:00Z,50\n")
    let gap = try #require(result.longestGap)
    #expect(gap.seconds == 5 * 3600)
    #expect(RFC3339.string(from: gap.after) == "2023-11-16T00:00:00Z")
    #expect(result.events.contains { $0.kind == .signalMissing })
  }

  @Test("--start overrides the recording")
  func startOverride() throws {
    // 4 recorded replicas at 100% spread over the 2 we start with read 200%: 8 replicas at 50%.
    let result = try replay("timestamp,gpu,model.replicas\n2023-11-16T00:00:00Z,100,4\n", start: ["model": 2])
    #expect(result.events.first?.from == 2)
    #expect(result.events.first?.to == 8)
  }

  @Test("a --start for an unknown process is refused")
  func unknownStart() {
    #expect(throws: ReplayError.unknownProcess("modle", known: ["model"])) {
      try replay("timestamp,gpu\n2023-11-16T00:00:00Z,100\n", start: ["modle": 2])
    }
  }

  @Test("a sample older than the staleness limit is missing, and missing never scales down")
  func staleness() throws {
    let result = try replay(
      """
      timestamp,gpu,model.replicas
      2023-11-16T00:00:00Z,50,4
      2023-11-16T00:05:00Z,5,4
      """)
    // Ticks 0..45s see the first sample; 60s..285s see nothing within 1m; 300s sees 5%.
    let kinds: [AuditEventKind] = result.events.map(\.kind)
    #expect(kinds == [.signalMissing, .signalRestored, .scaleDown])
    #expect(result.events[0].time == Date(timeIntervalSince1970: 1_700_092_800 + 75))
    #expect(result.events[2].to == 1)
    #expect(result.processes.first?.minReplicas == 1)
  }

  @Test("replica-hours and cost cover the span from the first sample to the last")
  func summaryArithmetic() throws {
    let result = try replay(
      """
      timestamp,gpu,model.replicas
      2023-11-16T00:00:00Z,50,2
      2023-11-16T01:00:00Z,50,2
      """)
    let summary = try #require(result.processes.first)
    #expect(result.ticks == 241)
    #expect(abs(summary.replicaHours - 2) < 1e-9)
    #expect(abs((summary.computeCostUSD ?? 0) - 4) < 1e-9)
    #expect(abs(summary.meanReplicas - 2) < 1e-9)
  }

  @Test("no samples is an error that says what the file needs")
  func noSamples() {
    #expect(throws: ReplayError.noSamples) { try replay("timestamp,gpu\n") }
  }
}

@Suite("Replay: values as live reads them")
struct ReplayValueTests {
  func replay(_ policy: String, _ csv: String) throws -> ReplayResult {
    let policy = try PolicyLoader.load(yaml: policy, file: "p.yaml").policy
    let metrics = try RecordedMetrics.parseCSV(csv, file: "m.csv")
    return try Replay(policy: policy, options: .init(), logger: Logger(label: "test")).run(metrics)
  }

  @Test(
    "a negative value is missing, as a live read of it fails: no scale-down on it, a signal_missing record")
  func negativeIsMissing() throws {
    let result = try replay(
      """
      processes:
        w: {class: batch, scaling: {metric: queue_depth, target: 10, min: 0, max: 10}}
      autoscaling:
        w: {scale_down: {stabilization_window: 0s}}
      """,
      """
      timestamp,queue_depth,w.replicas
      2023-11-16T00:00:00Z,-5,4
      2023-11-16T00:00:15Z,-5,4
      """)
    #expect(result.events.map(\.kind) == [.signalMissing])
    #expect(result.processes.first?.maxReplicas == 4 && result.processes.first?.minReplicas == 4)
  }

  @Test("a blank cost rate is metered at its last value, as the budget counts it; its record says so")
  func meteredCarriesForward() throws {
    let result = try replay(
      """
      signals:
        q: {}
        spend: {}
      processes:
        w: {scaling: {metric: q, target: 10, min: 1, max: 2}}
      autoscaling:
        w: {cost_circuit_breaker: {daily_budget_usd: 1000, cost_rate_metric: spend}}
      """,
      """
      timestamp,q,spend,w.replicas
      2023-11-16T00:00:00Z,5,36,1
      2023-11-16T00:30:00Z,5,,1
      2023-11-16T01:00:00Z,5,,1
      """)
    // $36 an hour for the hour: the half hours with no value carry the last one.
    #expect(abs((result.processes.first?.meteredCostUSD ?? 0) - 36) < 0.01)
    let missing = try #require(
      result.events.first { $0.kind == .signalMissing && $0.detail.contains("spend") })
    #expect(
      missing.detail == "signal spend has no value; the budget of w counts its last value until it returns")
  }
}
