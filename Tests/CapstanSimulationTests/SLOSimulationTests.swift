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
func sloSimulated(bound: String = "40ms") throws -> Policy {
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
          slo: {latency: ttft, bound: 2s, target: 99%}
    autoscaling:
      m:
        scale_down: {stabilization_window: 0s}
    """)
}

@Suite("Simulating a process sized on its SLOs")
struct SLOSimulationTests {
  @Test("a request's inter-token latency follows the step law at the batch it joins")
  func stepLaw() throws {
    // Three requests at once on one replica: batches of 1, 2 and 3 as each joins, so steps of
    // 21, 22 and 23 ms; 100 tokens each, after a 50 ms prefill.
    let policy = try sloSimulated()
    let trace = Trace(
      kind: .llm, start: Date(timeIntervalSince1970: 1_700_000_000),
      requests: [0, 0, 0].map { Trace.Request(arrival: $0, inputTokens: 500, outputTokens: 100) })
    var fleet = try Fleet(
      target: try #require(policy.target(named: "m")),
      settings: try #require(policy.target(named: "m")?.simulation),
      trace: trace, interval: 15, start: [1])
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
