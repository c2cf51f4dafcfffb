import CapstanCore
import Foundation
import Testing

@testable import CapstanSimulation

/// LLM requests of 500 prompt and 100 output tokens, arriving at each rate (a second) for
/// `span` seconds in turn, with exponential gaps from a fixed seed.
func steppedLoad(_ rates: [Double], span: Double) -> Trace {
  var generator = SplitMix64(seed: 7)
  var requests: [Trace.Request] = []
  for (index, rate) in rates.enumerated() {
    var time = Double(index) * span
    while true {
      time += -log(1 - Double(generator.next() >> 11) / Double(1 << 53)) / rate
      guard time < Double(index + 1) * span else { break }
      requests.append(Trace.Request(arrival: time, inputTokens: 500, outputTokens: 100))
    }
  }
  return Trace(kind: .llm, start: Date(timeIntervalSince1970: 1_700_000_000), requests: requests)
}

/// A model server whose decode step takes 20 ms and 1 ms more a request in its batch, sized on
/// an ITL objective measured as the mean over the last minute.
func sloSimulated(bound: String = "40ms", judged: String = "2s") throws -> Policy {
  try policy(
    """
    processes:
      m:
        startup: 30s
        scaling:
          min: 1
          max: 12
          slo: {latency: itl, percentile: 99, bound: \(bound), measured: itl}
          load: rate
          running: running
          waiting: waiting
        simulation:
          slots: 64
          prefill_tokens_per_second: 10000
          itl: {base: 20ms, per_request: 1ms}
          signals: {rate: request_rate, running: running, waiting: queue_depth, itl: itl_mean}
          slo: {latency: ttft, bound: \(judged), target: 99%}
    autoscaling:
      m:
        scale_down: {stabilization_window: 0s}
    """)
}

@Suite("Simulating a process sized on its SLOs")
struct SLOSimulationTests {
  /// One replica of `policy`'s process `m`, and three requests of 500 prompt and 100 output
  /// tokens arriving at once.
  func threeAtOnce(_ policy: Policy) throws -> Fleet {
    let trace = Trace(
      kind: .llm, start: Date(timeIntervalSince1970: 1_700_000_000),
      requests: [0, 0, 0].map { Trace.Request(arrival: $0, inputTokens: 500, outputTokens: 100) })
    return try Fleet(
      target: try #require(policy.target(named: "m")),
      settings: try #require(policy.target(named: "m")?.simulation),
      trace: trace, interval: 15, start: [1])
  }

  @Test("a request's inter-token latency follows the step law at the batch it joins")
  func stepLaw() throws {
    // Three requests at once on one replica: batches of 1, 2 and 3 as each joins, so steps of
    // 21, 22 and 23 ms; 100 tokens each, after a 50 ms prefill.
    var fleet = try threeAtOnce(try sloSimulated())
    try fleet.advance(to: 1)
    #expect(abs((fleet.measure(.itlMean) ?? 0) - 0.022) < 1e-9)
    #expect(abs((fleet.measure(.itlP99) ?? 0) - 0.023) < 1e-9)
    // TTFT: the prefill and one step.
    #expect(abs((fleet.measure(.ttftP99) ?? 0) - (0.05 + 0.023)) < 1e-9)
    #expect(fleet.measure(.running) == 3)
    // The last of them ends 50 ms + 100 × 23 ms after it starts.
    try fleet.advance(to: 2.349)
    #expect(fleet.measure(.running) == 1)
    try fleet.advance(to: 2.351)
    #expect(fleet.measure(.running) == 0)
  }

  @Test("slo_within is the share of the last minute's requests whose SLO latency is within its bound")
  func within() throws {
    // The three requests of `stepLaw` have first tokens at 71, 72 and 73 ms: two within 72 ms.
    var fleet = try threeAtOnce(try sloSimulated(judged: "72ms"))
    #expect(fleet.measure(.sloWithin) == nil)
    try fleet.advance(to: 1)
    #expect(abs((fleet.measure(.sloWithin) ?? 0) - 2.0 / 3) < 1e-9)
    // A minute on, none started within the last minute.
    try fleet.advance(to: 61)
    #expect(fleet.measure(.sloWithin) == nil)
  }

  @Test("after 15 minutes of varied traffic the learned law is within 10% of the simulator's")
  func learnsLaw() throws {
    let policy = try sloSimulated()
    // 15 minutes: the load steps through five rates, three minutes each.
    let trace = steppedLoad([4, 12, 24, 8, 16], span: 180)
    var events: [AuditEvent] = []
    _ = try Simulator(policy: policy, traces: ["m": trace]).run { events.append($0) }
    let modelled = events.filter { $0.slo?.mode == .model && $0.time.timeIntervalSince(trace.start) <= 900 }
    let fit = try #require(modelled.last?.slo?.objectives.first?.fit, "\(events.map(\.detail))")
    // The simulator's law: 20 ms + 1 ms × the batch a request joins, itself included. A
    // replica's mean batch is the concurrency the engine sees, so the law it can learn is
    // 21 ms + 1 ms × concurrency.
    #expect(abs(fit.alpha / 0.021 - 1) < 0.1, "\(fit)")
    #expect(abs(fit.beta / 0.001 - 1) < 0.1, "\(fit)")
    #expect(modelled.last?.detail.contains("itl = ") == true)
  }
}

@Suite("Simulating an SLO on a process with variants")
struct SLOVariantSimulationTests {
  /// The model server of `sloSimulated` on two variants: `fast` (a unit of capacity, $4 an
  /// hour) and `slow` (half a unit at half the speed, $1.20: $2.40 a unit), at most 4 of them,
  /// sized on a TTFT objective.
  static func policy(slow: String = "max: 4") throws -> Policy {
    try CapstanSimulationTests.policy(
      """
      processes:
        m:
          startup: 30s
          scaling:
            min: 1
            max: 12
            slo: {latency: ttft, percentile: 99, bound: 2s, measured: ttft}
            load: rate
            running: running
            waiting: waiting
          variants:
            fast: {cost_per_hour_usd: 4, capacity: 1, max: 8}
            slow: {cost_per_hour_usd: 1.2, capacity: 0.5, \(slow)}
          simulation:
            slots: 16
            prefill_tokens_per_second: 10000
            itl: {base: 20ms, per_request: 1ms}
            signals: {rate: request_rate, running: running, waiting: queue_depth, ttft: ttft_p99}
            slo: {latency: ttft, bound: 2s, target: 99%}
      """)
  }

  @Test("the SLO's capacity is filled with the cheap variant first, and the dear one only past its max")
  func fillsCheapFirst() throws {
    // 40 minutes rising and falling in steps no forecast sees coming: 2 requests a second,
    // 10, 20, then 4.
    let trace = steppedLoad([2, 10, 20, 4], span: 600)
    var events: [AuditEvent] = []
    let run = try #require(
      try Simulator(policy: Self.policy(), traces: ["m": trace]).run { events.append($0) }.processes.first)
    let moves = events.filter { $0.kind == .scaleUp || $0.kind == .scaleDown }
    let summary = moves.map { "\($0.process) \($0.from ?? 0) -> \($0.to ?? 0): \($0.detail)" }
    #expect(moves.allSatisfy { $0.reason == .slo || $0.reason == .modelNotReady }, "\(summary)")
    // Up: the slow variant to its max before any fast replica.
    let ups = moves.filter { $0.kind == .scaleUp }
    #expect(ups.first?.process == "m.slow", "\(summary)")
    let firstFast = try #require(ups.firstIndex { $0.process == "m.fast" }, "\(summary)")
    #expect(ups[firstFast].detail.contains("slow 4 ("), "\(summary)")
    // Down: every fast replica goes before a slow one does.
    let downs = moves.filter { $0.kind == .scaleDown }
    let firstSlowDown = try #require(downs.firstIndex { $0.process == "m.slow" }, "\(summary)")
    #expect(downs[..<firstSlowDown].allSatisfy { $0.process == "m.fast" }, "\(summary)")
    #expect(downs[firstSlowDown...].allSatisfy { $0.process == "m.slow" }, "\(summary)")
    #expect(downs[firstSlowDown].detail.contains("fast 0 ("), "\(summary)")
    // The records carry the sizing in units of capacity.
    #expect(moves.contains { $0.slo?.mode == .model && $0.detail.contains(" a unit of capacity → ") })
    let hours = Dictionary(
      uniqueKeysWithValues: run.variantReplicaHours.map { ($0.variant, $0.replicaHours) })
    #expect((hours["slow"] ?? 0) > 0 && (hours["fast"] ?? 0) > 0, "\(hours)")
    #expect(abs(run.costUSD - ((hours["slow"] ?? 0) * 1.2 + (hours["fast"] ?? 0) * 4)) < 1e-6)
  }
}

struct VariantLearningSimulationTests {
  @Test(
    "a variant declared at a unit of capacity that serves at half the speed learns a capacity nearer the half"
  )
  func learnsTowardTruth() throws {
    // `slow` is declared a whole unit, as fast as `fast`, and serves at half its speed. Each
    // runs one replica at least, so each has samples; the load steps through levels no
    // forecast sees coming.
    let policy = try CapstanSimulationTests.policy(
      """
      processes:
        m:
          startup: 30s
          scaling:
            min: 2
            max: 12
            slo: {latency: ttft, percentile: 99, bound: 2s, measured: ttft}
            load: rate
            running: running
            waiting: waiting
          variants:
            fast:
              cost_per_hour_usd: 4
              capacity: 1
              min: 1
              max: 8
              learn: {load: fast_rate, running: fast_running, measured: {ttft: fast_ttft}}
            slow:
              cost_per_hour_usd: 1.2
              capacity: 1
              min: 1
              max: 8
              learn: {load: slow_rate, running: slow_running, measured: {ttft: slow_ttft}}
          simulation:
            slots: 16
            prefill_tokens_per_second: 10000
            itl: {base: 20ms, per_request: 1ms}
            speeds: {slow: 0.5}
            signals:
              rate: request_rate
              running: running
              waiting: queue_depth
              ttft: ttft_p99
              fast_rate: fast.request_rate
              fast_running: fast.running
              fast_ttft: fast.ttft_p99
              slow_rate: slow.request_rate
              slow_running: slow.running
              slow_ttft: slow.ttft_p99
            slo: {latency: ttft, bound: 2s, target: 99%}
      """)
    let trace = steppedLoad([2, 6, 3, 8, 4, 10, 5, 7], span: 600)
    var events: [AuditEvent] = []
    _ = try Simulator(policy: policy, traces: ["m": trace]).run { events.append($0) }
    // Every move's record names the mix; the last that names a learned capacity for `slow`
    // says what it learned.
    let learned = events.compactMap { event -> Double? in
      guard
        let range = event.detail.range(
          of: #"slow \d+(?: -> \d+)? \(\$[0-9.]+ an hour a unit, capacity ([0-9.]+) learned\)"#,
          options: .regularExpression)
      else { return nil }
      let text = event.detail[range]
      guard let capacity = text.split(separator: "capacity ").last?.split(separator: " ").first else {
        return nil
      }
      return Double(capacity)
    }
    let last = try #require(learned.last, "\(events.map(\.detail))")
    // Nearer the half it serves at than the whole unit declared.
    #expect(last < 0.75, "\(learned)")
  }
}
