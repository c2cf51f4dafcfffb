import Foundation
import Testing

@testable import CapstanCore

/// A controller that stops (a restart, a paused machine, a lost lease) comes back to a state
/// it wrote itself: the state must load, and what it learned must not read the gap as load.
@Suite("What an SLO-sized process learned, across a gap and at the largest values")
struct SLORestartTests {
  @Test("past two ticks without a tick, the trend starts again and the arrivals' dispersion takes no sample")
  func gapRestartsTrend() throws {
    var trend = LoadTrend()
    // Arrivals alternating 3 and 5 a second: their dispersion, tick to tick, is above 1.
    for tick in 0..<200 {
      trend.add(tick % 2 == 0 ? 3 : 5, at: t0.addingTimeInterval(Double(tick) * 15), tick: 15)
    }
    let dispersion = trend.dispersion
    #expect(dispersion > 1 && dispersion < 100)
    // Back an hour later at 4 a second: 14,400 arrivals counted as one tick's would read as a
    // burst a thousand times the usual and set the dispersion to its cap of 100.
    trend.add(4, at: t0.addingTimeInterval(199 * 15 + 3600), tick: 15)
    #expect(trend.dispersion == dispersion)
    #expect(trend.level == 4 && trend.slope == 0)
    #expect(trend.forecast(ahead: 120) == 4)
    // A tick late by half a tick is still a tick: the level moves a share of the way.
    trend.add(8, at: t0.addingTimeInterval(199 * 15 + 3600 + 22.5), tick: 15)
    #expect(trend.level > 4 && trend.level < 8)
    #expect(trend.dispersion != dispersion)
  }

  @Test("a controller back after an hour away sizes as before it stopped, not for a burst")
  func backAfterAnHour() throws {
    var harness = EngineHarness(try sloServer(), replicas: ["m": 4])
    SLOEngineTests().learned(&harness, ticks: 160)
    let before = try #require(harness.state.targets["m"]?.slo?.trend.dispersion)
    harness.tick(
      at: 160 * 15 + 3600, ["rate": 10, "running": 50, "waiting": 0, "ttft": 0.4, "itl": 0.03])
    let after = try #require(harness.state.targets["m"]?.slo?.trend.dispersion)
    #expect(after == before)
    #expect(harness.state.targets["m"]?.slo?.trend.level == 10)
  }

  @Test(
    "a state learned at the largest values a signal may take, forecast included, is one a restart accepts")
  func largestValues() throws {
    // One L4 of half a unit: a unit runs twice the requests its replicas report.
    var variants = EngineHarness(try loadPolicy(SLOVariantTests.policy), replicas: ["m.h100": 0, "m.l4": 1])
    // A forecast too: a slot's mean sums its values, nine of them near 1e15 past 1e15.
    var server = EngineHarness(
      try sloServer(extra: "    predictive: {seasonality: daily}", ttft: ", within: good, period: 1h"),
      replicas: ["m": 1])
    for tick in 0..<120 {
      let seconds = Double(tick) * 15
      let largest = PolicyLimits.maxMagnitude * (tick % 3 == 0 ? 1 : 0.4)
      variants.tick(at: seconds, ["rate": largest, "running": largest, "itl": largest])
      server.tick(
        at: seconds,
        ["rate": largest, "running": largest, "waiting": largest, "ttft": largest, "itl": largest, "good": 1])
    }
    for state in [variants.state, server.state] {
      let encoder = JSONEncoder()
      encoder.dateEncodingStrategy = .secondsSince1970
      let decoder = JSONDecoder()
      decoder.dateDecodingStrategy = .secondsSince1970
      let restored = try decoder.decode(EngineState.self, from: try encoder.encode(state))
      #expect(restored == state)
      #expect(restored.problems(now: t0.addingTimeInterval(120 * 15)).isEmpty)
    }
  }

  @Test("at the largest load, a model that allows a ten-thousandth of a request a replica sizes to the max")
  func saturatedCount() throws {
    let slo = try #require(try sloServer().targets.first { $0.name == "m" }?.slo)
    var state = SLOState()
    // TTFT 300 ms + 10 ms a request; ITL a hair under its 50 ms bound with no request at all.
    for tick in 0..<40 {
      let concurrency = Double(1 + tick % 4)
      state.latencies["ttft", default: LatencyModel()].add(
        concurrency: concurrency, latency: 0.3 + 0.01 * concurrency)
      state.latencies["itl", default: LatencyModel()].add(
        concurrency: concurrency, latency: 0.05 - 1e-7 + 0.001 * concurrency)
      state.duration.add(running: 5, load: 1, concurrency: concurrency)
    }
    state.fullAt = 16
    let largest = PolicyLimits.maxMagnitude
    let observation = SLOObservation(
      load: largest, running: largest, waiting: 0, measured: [0.4, 0.04],
      status: ReplicaStatus(current: 2, ready: 2), now: t0, tick: 15)
    // 5e15 requests in flight over about 1e-4 a replica: more replicas than an Int holds.
    let sizing = SLOSizer.size(observation, slo, state: state, ahead: 120, seasonal: nil, max: 8)
    #expect(sizing.mode == .model)
    #expect(sizing.byLittle == Int.max, "\(sizing)")
    #expect(sizing.replicas >= 8)
  }
}
