import Foundation
import Testing

@testable import CapstanCore

/// Variants that learn their capacity on the process's SLO from their own signals.
struct VariantLearningTests {
  /// H100s ($4.10, the unit) and L4s ($1.20, declared half a unit), both learning, sized on a
  /// TTFT objective of 2 s.
  static let policy = """
    processes:
      m:
        scaling:
          min: 1
          max: 20
          slo: {latency: ttft, percentile: 99, bound: 2s, measured: ttft}
          load: rate
          running: running
        variants:
          h100:
            cost_per_hour_usd: 4.10
            capacity: 1
            min: 1
            max: 8
            learn: {load: h100_rate, running: h100_running, measured: {ttft: h100_ttft}}
          l4:
            cost_per_hour_usd: 1.20
            capacity: 0.5
            min: 1
            max: 8
            learn: {load: l4_rate, running: l4_running, measured: {ttft: l4_ttft}}
    autoscaling:
      m:
        scale_down: {stabilization_window: 0s}
    """

  /// One replica of each, at loads stepping through six levels: an H100's first token takes
  /// 0.5 s + 50 ms a request it runs, a request 10 s; an L4's 1 s + 100 ms, a request 20 s.
  /// Within 2 s an H100 runs 30 at once, 3 requests a second; an L4 10, 0.5 a second: a sixth
  /// of an H100, not the half declared.
  static func learn(_ harness: inout EngineHarness, ticks: Range<Int>, unitMeasured: Bool = true) {
    for tick in ticks {
      let level = Double((tick / 20) % 6)
      let h100Rate = 0.5 + 0.5 * level
      let l4Rate = 0.2 + 0.2 * level
      let h100Running = h100Rate * 10 / Double(harness.replicas["m.h100"] ?? 1)
      let l4Running = l4Rate * 20 / Double(harness.replicas["m.l4"] ?? 1)
      var signals = [
        "rate": h100Rate + l4Rate, "running": h100Rate * 10 + l4Rate * 20, "ttft": 0.9,
        "l4_rate": l4Rate, "l4_running": l4Rate * 20, "l4_ttft": 1 + 0.1 * l4Running,
      ]
      if unitMeasured {
        signals["h100_rate"] = h100Rate
        signals["h100_running"] = h100Rate * 10
        signals["h100_ttft"] = 0.5 + 0.05 * h100Running
      }
      harness.tick(at: Double(tick) * 15, signals)
    }
  }

  @Test(
    "a variant's capacity is learned against the unit variant's from their own signals, and the fill order follows its learned price"
  )
  func learnsCapacity() throws {
    let policy = try loadPolicy(Self.policy)
    #expect(policy.variantGroup(named: "m")?.unit == "m.h100")
    var harness = EngineHarness(policy, replicas: ["m.h100": 1, "m.l4": 1])
    Self.learn(&harness, ticks: 0..<140)
    #expect(harness.replicas == ["m.h100": 1, "m.l4": 1], "\(harness.events.map(\.detail))")
    // 0.5 / 3 of the unit, to two figures (the models pair each latency with the concurrency
    // smoothed over the span it is measured over, which lags a step a little).
    let learned = try #require(harness.state.targets["m.l4"]?.learnedCapacity)
    #expect(abs(learned - 0.5 / 3) < 0.02, "\(learned)")
    #expect(harness.state.targets["m.h100"]?.learnedCapacity == nil)

    // Declared, an L4 is the cheaper unit ($2.40 against $4.10); learned, the dearer (about $7):
    // a scale-up now takes an H100 first.
    let before = harness.events.count
    harness.tick(
      at: 140 * 15,
      [
        "rate": 30, "running": 300, "ttft": 3, "h100_rate": 20, "h100_running": 200, "h100_ttft": 4.5,
        "l4_rate": 10, "l4_running": 100, "l4_ttft": 5,
      ])
    let moves = harness.events[before...].filter { $0.kind == .scaleUp }
    #expect(moves.first?.process == "m.h100", "\(moves.map(\.detail))")
    let detail = try #require(moves.first?.detail)
    let inUse = try #require(harness.state.targets["m.l4"]?.learnedCapacity)
    #expect(
      detail.contains("variants filled cheapest per unit of capacity first: h100 1 -> ")
        && detail.contains("l4 1") && detail.contains("an hour a unit, capacity \(format(inUse)) learned)"),
      "\(detail)")
  }

  @Test(
    "until the unit variant has learned too, the declared capacity holds; a missing signal keeps a learned one"
  )
  func declaredUntilLearned() throws {
    var harness = EngineHarness(try loadPolicy(Self.policy), replicas: ["m.h100": 1, "m.l4": 1])
    // The L4 learns its own model, but the H100s are not measured: nothing to learn against.
    Self.learn(&harness, ticks: 0..<140, unitMeasured: false)
    #expect(harness.state.targets["m.l4"]?.slo?.latencies["ttft"]?.status.fit != nil)
    #expect(harness.state.targets["m.l4"]?.learnedCapacity == nil)
    // Both measured: learned. Then the L4's signals go missing: the learned capacity stays.
    Self.learn(&harness, ticks: 140..<280)
    let learned = try #require(harness.state.targets["m.l4"]?.learnedCapacity)
    #expect(abs(learned - 0.5 / 3) < 0.02, "\(learned)")
    harness.tick(
      at: 280 * 15,
      ["rate": 1, "running": 10, "ttft": 0.9, "h100_rate": 1, "h100_running": 10, "h100_ttft": 0.7])
    #expect(harness.state.targets["m.l4"]?.learnedCapacity == learned)
    #expect(harness.replicas == ["m.h100": 1, "m.l4": 1], "\(harness.events.map(\.detail))")
  }

  @Test("a learning variant's missing signal says what it holds: its learned capacity, or nothing to measure")
  func outageSentences() throws {
    var harness = EngineHarness(try loadPolicy(Self.policy), replicas: ["m.h100": 1, "m.l4": 0])
    harness.tick(at: 0, ["rate": 1, "running": 10, "ttft": 0.9])
    let missing = harness.events(.signalMissing)
    #expect(
      missing.contains {
        $0.process == "m.h100"
          && $0.detail == "signal h100_ttft has no value; the capacity m.h100 learns holds until it returns"
      }, "\(missing.map(\.detail))")
    #expect(
      missing.contains {
        $0.process == "m.l4"
          && $0.detail
            == "signal l4_ttft has no value; m.l4 runs no replica to measure; its capacity learns nothing until one runs"
      }, "\(missing.map(\.detail))")
  }

  @Test("a learned capacity moves only past a tenth of the one in use, within ten times the declared")
  func nextCapacity() {
    // Unknown rates: what is in use, or the declared.
    #expect(VariantCapacity.next(declared: 0.5, inUse: nil, rate: nil, unitRate: 2, unitCapacity: 1) == 0.5)
    #expect(VariantCapacity.next(declared: 0.5, inUse: 0.3, rate: 1, unitRate: nil, unitCapacity: 1) == 0.3)
    // 1 / 3 of the unit: 0.33; within a tenth of 0.31 in use, 0.31 stays.
    #expect(VariantCapacity.next(declared: 0.5, inUse: nil, rate: 1, unitRate: 3, unitCapacity: 1) == 0.33)
    #expect(VariantCapacity.next(declared: 0.5, inUse: 0.31, rate: 1, unitRate: 3, unitCapacity: 1) == 0.31)
    // In units of the unit variant's declared capacity.
    #expect(VariantCapacity.next(declared: 0.5, inUse: nil, rate: 1, unitRate: 3, unitCapacity: 2) == 0.67)
    // Clamped to ten times either way of the declared.
    #expect(VariantCapacity.next(declared: 0.5, inUse: nil, rate: 1, unitRate: 1000, unitCapacity: 1) == 0.05)
    #expect(VariantCapacity.next(declared: 0.5, inUse: nil, rate: 1000, unitRate: 1, unitCapacity: 1) == 5)
  }

  @Test("a variant's learned capacity in a saved state must be a capacity")
  func savedStateChecked() {
    var state = EngineState()
    state.targets["m.l4"] = TargetState()
    state.targets["m.l4"]?.learnedCapacity = -1
    #expect(state.problems(now: t0).contains { $0.contains("m.l4.learnedCapacity is -1.0") })
    state.targets["m.l4"]?.learnedCapacity = .nan
    #expect(state.problems(now: t0).contains { $0.contains("m.l4.learnedCapacity") })
    state.targets["m.l4"]?.learnedCapacity = 0.25
    #expect(state.problems(now: t0).isEmpty)
  }

  @Test("bad learn: blocks are refused at their line")
  func refusals() {
    /// A process on a TTFT objective with `variants` (each line indented to sit under
    /// `variants:`) and `rest` after them.
    func policy(_ variants: [String], _ rest: [String] = []) -> String {
      ([
        "processes:", "  m:", "    scaling:", "      min: 1", "      max: 4",
        "      slo: {latency: ttft, percentile: 99, bound: 2s, measured: ttft}", "      load: rate",
        "      running: running", "    variants:",
      ] + variants.map { "      " + $0 } + rest.map { "    " + $0 })
      .joined(separator: "\n")
    }
    // No SLO on the process to learn against.
    let noSLO = refusal(
      """
      processes:
        m:
          scaling: {metric: rate, target: 10, min: 1, max: 4}
          variants:
            a: {capacity: 1, learn: {load: a_rate, running: a_running, measured: {ttft: a_ttft}}}
      """)
    #expect(noSLO.contains("p.yaml:5:") && noSLO.contains("process 'm' has no scaling.slo"), "\(noSLO)")
    // A latency the SLO does not bound, and the one it does missing; no running.
    let measured = refusal(policy(["a: {capacity: 1, learn: {load: a_rate, measured: {itl: a_itl}}}"]))
    #expect(measured.contains("p.yaml:10:") && measured.contains("learn needs running"), "\(measured)")
    #expect(
      measured.contains("names 'itl', which process 'm''s SLO does not bound here: name ttft"), "\(measured)")
    #expect(measured.contains("learn.measured needs ttft"), "\(measured)")
    // Learning with nothing to start from.
    let noCapacity = refusal(
      policy(["a: {learn: {load: a_rate, running: a_running, measured: {ttft: a_ttft}}}"]))
    #expect(
      noCapacity.contains("p.yaml:10:")
        && noCapacity.contains("learns its capacity and still needs capacity"),
      "\(noCapacity)")
    // The first variant sets the unit, and must learn for another to learn against it.
    let unit = refusal(
      policy([
        "a: {capacity: 1}",
        "b: {capacity: 0.5, learn: {load: b_rate, running: b_running, measured: {ttft: b_ttft}}}",
      ]))
    #expect(
      unit.contains("p.yaml:11:") && unit.contains("variant 'b' learns its capacity against 'a'")
        && unit.contains("give 'a' a learn: block too"), "\(unit)")
    // The simulation's per-variant quantities: a known variant, and a quantity of one kind.
    let simulation = refusal(
      policy(
        ["a: {capacity: 1}"],
        [
          "simulation:", "  slots: 4", "  speeds: {c: 0.5}",
          "  signals: {rate: request_rate, a_depth: a.queue_depth, x: z.running}",
          "  slo: {latency: ttft, bound: 2s}",
        ]))
    #expect(simulation.contains("names variant 'c', which the process does not have"), "\(simulation)")
    #expect(simulation.contains("queue_depth is the process's, not one variant's"), "\(simulation)")
    #expect(simulation.contains("names variant 'z'"), "\(simulation)")
  }
}
