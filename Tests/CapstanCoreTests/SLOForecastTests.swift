import Foundation
import Testing

@testable import CapstanCore

@Suite("The SLO sizing's seasonal forecast")
struct SLOForecastTests {
  static func policy(predictive: String = "{}") throws -> Policy {
    try sloServer(extra: "    predictive: \(predictive)")
  }

  @Test("predictive on an SLO-sized process forecasts its load, as the sizing's load ahead")
  func loads() throws {
    let settings = try #require(try Self.policy().target(named: "m")?.predictive)
    #expect(settings.signal == "rate")
    #expect(settings.perReplica == nil && settings.feedsSLO)
    #expect(settings.lookahead == 135)
    let summary = settings.summary(max: 8, min: 1)
    #expect(summary.contains("forecast of rate as the SLO sizing's load ahead"), "\(summary)")
    #expect(summary.contains("profile of each 5m slot's mean"), "\(summary)")
    #expect(try Self.policy(predictive: "{signal: rate}").target(named: "m")?.predictive?.signal == "rate")
  }

  @Test(
    "a floor's settings, or another signal, are refused at their line on an SLO-sized process",
    arguments: [
      ("{per_replica: 3}", "p.yaml:14:31: error: processes.m.predictive.per_replica does not apply"),
      ("{max_added: 2}", "p.yaml:14:29: error: processes.m.predictive.max_added does not apply"),
      (
        "{signal: running}",
        "p.yaml:14:26: error: processes.m.predictive forecasts 'running', but an SLO-sized process forecasts its scaling.load 'rate'"
      ),
    ])
  func refused(predictive: String, message: String) throws {
    let text = refusal(sloServerText(extra: "    predictive: \(predictive)"))
    #expect(text.contains(message), "\(text)")
  }

  @Test("a slot's mean takes each value once: a history read again over a span seen changes nothing")
  func meansTakeValuesOnce() throws {
    let settings = try #require(try Self.policy().target(named: "m")?.predictive)
    let clock = SlotClock(settings)
    var history = LoadHistory()
    let midnight = (t0.timeIntervalSince1970 / 86_400).rounded(.up) * 86_400
    let slotStart = Date(timeIntervalSince1970: midnight + 3600)
    for (offset, value) in [(0.0, 2.0), (60, 4), (120, 9)] {
      history.observe(value, at: slotStart.addingTimeInterval(offset), clock: clock, keep: 14, means: true)
    }
    let position = clock.position(slotStart)
    #expect(history.mean(period: position.period, slot: position.slot) == 5)
    #expect(history.peak(period: position.period, slot: position.slot) == 9)
    // The same values again, as a history source read again at its refresh gives them.
    for (offset, value) in [(0.0, 2.0), (60, 4), (120, 9)] {
      history.observe(value, at: slotStart.addingTimeInterval(offset), clock: clock, keep: 14, means: true)
    }
    #expect(history.mean(period: position.period, slot: position.slot) == 5)
    // The profile of the next day takes the means.
    let profile = history.profile(
      before: position.period + 1, quantile: 0.9, slots: clock.slots, ofMeans: true)
    #expect(profile[position.slot] == 5)
    #expect(
      history.profile(before: position.period + 1, quantile: 0.9, slots: clock.slots)[position.slot] == 9)
  }

  @Test("a history saved without means loads, and takes means from then on")
  func savedWithoutMeans() throws {
    let saved = #"{"periods":[{"index":19677,"peaks":[3,null]}],"oldest":0,"newest":0}"#
    var history = try JSONDecoder().decode(LoadHistory.self, from: Data(saved.utf8))
    #expect(history.isSound)
    #expect(history.periods.first?.means.isEmpty == true)
    var settings = try #require(try Self.policy().target(named: "m")?.predictive)
    settings.resolution = 43_200
    let clock = SlotClock(settings)
    history.observe(
      1, at: Date(timeIntervalSince1970: 19677 * 86_400 + 60), clock: clock, keep: settings.keptPeriods,
      means: true)
    #expect(history.mean(period: 19677, slot: 0) == 1)
    #expect(history.peak(period: 19677, slot: 0) == 3)
    #expect(history.isSound)
  }

  @Test("a floor's history keeps its peaks alone, so its saved state is no larger than before")
  func floorKeepsNoMeans() throws {
    var settings = try #require(try Self.policy().target(named: "m")?.predictive)
    settings.perReplica = 10
    var state = ForecastState()
    for minute in 0..<120 {
      _ = state.advance(
        value: Double(minute), now: t0.addingTimeInterval(Double(minute) * 60), settings: settings, min: 1,
        max: 8)
    }
    #expect(!state.history.periods.isEmpty && state.history.periods.allSatisfy { $0.means.isEmpty })
    settings.perReplica = nil
    _ = state.advanceLoad(value: 5, now: t0.addingTimeInterval(7200), settings: settings)
    #expect(state.history.periods.last?.means.contains { $0 != nil } == true)
  }

  @Test("a history source read again over a day already learned leaves the profile as it was")
  func historyReadTwice() throws {
    let policy = try Self.policy()
    let engine = ScalingEngine(policy: policy)
    // A recorded day: 4 a second, and 40 from 09:00 to 17:00, one value a minute.
    let day: [(time: Date, value: Double)] = stride(from: 0.0, to: 86_400, by: 60).map { second in
      let busy = second >= 9 * 3600 && second < 17 * 3600
      return (t0.addingTimeInterval(Self.midnight + second), busy ? 40 : 4)
    }
    let next = t0.addingTimeInterval(Self.midnight + 86_400 + 9 * 3600 - 120)
    var state = EngineState()
    engine.learn(day, for: "m", before: next, state: &state)
    let once = state
    engine.learn(day, for: "m", before: next, state: &state)
    #expect(state == once)
    var forecast = try #require(state.forecasts["m"])
    let settings = try #require(policy.target(named: "m")?.predictive)
    let (load, change) = forecast.advanceLoad(value: 4, now: next, settings: settings)
    #expect(change?.0 == .active)
    #expect(load?.profile == 40 && load?.periods == 1)
  }

  /// One tick a minute over `days` days of a server whose ITL is 20 ms + 1 ms a request and
  /// whose requests each stay 5 s, at 4 to 8 requests a second through the night and 40 from
  /// 09:00 to 17:00.
  static let midnight = (t0.timeIntervalSince1970 / 86_400).rounded(.up) * 86_400 - t0.timeIntervalSince1970

  static func day(_ harness: inout EngineHarness, days: Int, until last: TimeInterval = 86_400) {
    for day in 0..<days {
      var second = 0.0
      while second < (day == days - 1 ? last : 86_400) {
        let busy = second >= 9 * 3600 && second < 17 * 3600
        let rate = busy ? 40 : 4 + 2 * Double((Int(second) / 300) % 3)
        let replicas = Double(harness.replicas["m"] ?? 1)
        let running = rate * 5
        let b = running / replicas
        harness.tick(
          at: midnight + Double(day) * 86_400 + second,
          ["rate": rate, "running": running, "waiting": 0, "ttft": 0.3 + 0.01 * b, "itl": 0.02 + 0.001 * b])
        second += 60
      }
    }
  }

  @Test(
    "from the second day, replicas are asked for a startup ahead of the daily step, and the record says why")
  func aheadOfTheStep() throws {
    // Day one: no history, so the trend alone; the pool grows at the step.
    var harness = EngineHarness(try Self.policy(), replicas: ["m": 1])
    Self.day(&harness, days: 1, until: 9 * 3600 - 60)
    let before = harness.replicas["m"] ?? 0
    let off = try #require(harness.events.first { $0.reason == .predictiveFloor })
    #expect(off.kind == .warning)
    #expect(
      off.detail.hasPrefix(
        "seasonal forecast off, sizing on the load's trend alone: the history of rate covers"))

    // Day two, two minutes before 09:00: the profile expects 40 a second a startup ahead.
    harness = EngineHarness(try Self.policy(), replicas: ["m": 1])
    Self.day(&harness, days: 2, until: 9 * 3600 - 60)
    let ahead = try #require(harness.events.last { $0.slo?.seasonal != nil && $0.kind == .scaleUp })
    #expect(
      harness.events.contains { $0.kind == .predictiveFloor && $0.detail.hasPrefix("seasonal forecast on: ") }
    )
    // Within the startup and a tick before the step, not at it.
    let step = Self.midnight + 86_400 + 9 * 3600
    #expect(ahead.time.timeIntervalSince(t0) >= step - 135 && ahead.time.timeIntervalSince(t0) < step)
    let sizing = try #require(ahead.slo)
    let seasonal = try #require(sizing.seasonal)
    #expect(seasonal.periods == 1)
    #expect(seasonal.profile == 40)
    #expect(sizing.forecast == seasonal.load && sizing.forecast > sizing.trend)
    #expect(ahead.detail.contains("(the profile's: the trend"), "\(ahead.detail)")
    // 40 a second × 5 s = 200 in flight, at about 30 a replica within the ITL bound.
    #expect((harness.replicas["m"] ?? 0) >= 6, "\(harness.events.suffix(3).map(\.detail))")
    #expect((harness.replicas["m"] ?? 0) > before)
    let json = AuditRecord(ahead, mode: .replay).jsonLine()
    #expect(json.contains(#""seasonal":{"#) && json.contains(#""profile":40"#), "\(json)")
  }
}
