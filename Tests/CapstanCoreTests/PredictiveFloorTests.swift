import Foundation
import Testing

@testable import CapstanCore

@Suite("Predictive floor")
struct PredictiveFloorTests {
  static func policy(predictive: String = "{}", scaleDownWindow: String = "5m") throws -> Policy {
    try loadPolicy(
      """
      controller: {interval: 15s}
      processes:
        model:
          startup: 2m
          scaling: {metric: concurrency, target: 10, min: 1, max: 20}
          predictive: \(predictive)
      autoscaling:
        model:
          scale_down: {stabilization_window: \(scaleDownWindow)}
      """)
  }

  /// The first midnight (UTC) after t0: the synthetic week starts there.
  static let midnight: TimeInterval = {
    let secondsIntoDay = t0.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400)
    return 86_400 - secondsIntoDay
  }()

  /// A working day: 10 in flight at night, 100 from 09:00 to 18:00.
  static func load(_ secondsIntoDay: TimeInterval) -> Double {
    secondsIntoDay >= 9 * 3600 && secondsIntoDay < 18 * 3600 ? 100 : 10
  }

  /// Ticks every 15 s over `days` days, with `load(day, secondsIntoDay)` (nil: missing).
  static func run(
    _ policy: Policy, days: Int, load: (Int, TimeInterval) -> Double? = { _, second in load(second) }
  ) -> EngineHarness {
    var harness = EngineHarness(policy, replicas: ["model": 1])
    for day in 0..<days {
      var second = 0.0
      while second < 86_400 {
        var signals: [String: Double] = [:]
        if let value = load(day, second) { signals["concurrency"] = value }
        harness.tick(at: midnight + Double(day) * 86_400 + second, signals)
        second += 15
      }
    }
    return harness
  }

  static func time(day: Int, _ secondsIntoDay: TimeInterval) -> Date {
    t0.addingTimeInterval(midnight + Double(day) * 86_400 + secondsIntoDay)
  }

  @Test("on every day after the first, the floor rises one lookahead (startup + one tick) before the step")
  func risesAheadOfTheDailyStep() throws {
    let harness = Self.run(try Self.policy(), days: 7)
    let ups = harness.events(.scaleUp)
    // Day one has no history: the rules scale at the step itself.
    let first = try #require(ups.first)
    #expect(first.time == Self.time(day: 0, 9 * 3600) && first.reason == .targetTracking && first.to == 10)
    for day in 1..<7 {
      let morning = try #require(
        ups.first { $0.time >= Self.time(day: day, 0) && $0.time < Self.time(day: day, 12 * 3600) })
      #expect(morning.time == Self.time(day: day, 9 * 3600 - 135), "day \(day + 1)")
      #expect(morning.reason == .predictiveFloor && morning.from == 1 && morning.to == 10)
      #expect(morning.forecast?.replicas == 10 && morning.forecast?.forecast == 100)
      #expect(morning.detail.hasPrefix("predictive floor 10: concurrency forecast 100 within 2m15s"))
    }
    // Off with a warning at the first tick, on from the second midnight, and never off again.
    let warnings = harness.events(.warning)
    #expect(warnings.count == 1 && warnings.first?.reason == .predictiveFloor)
    #expect(warnings.first?.detail.contains("covers 0s of the day a daily profile needs") == true)
    let on = harness.events(.predictiveFloor)
    #expect(on.map(\.time) == [Self.time(day: 1, 0)])
    #expect(on.first?.detail.contains("from 1 day of history (learned from what it sees)") == true)
  }

  @Test(
    "the floor holds a scale-down with a blocked record, and a sudden drop releases it within recent + one slot"
  )
  func suddenDropReleasesTheFloor() throws {
    // Day three empties at noon: the history says 100 until 18:00.
    let harness = Self.run(try Self.policy(scaleDownWindow: "0s"), days: 3) { day, second in
      day == 2 && second >= 12 * 3600 ? 0 : Self.load(second)
    }
    // From the tick after it rose, the rules want 1 and the floor holds 10: one record says so.
    let noon = Self.time(day: 2, 12 * 3600)
    let blocked = try #require(harness.events(.blocked).first { $0.time >= Self.time(day: 2, 0) })
    #expect(blocked.time == Self.time(day: 2, 9 * 3600 - 120) && blocked.reason == .predictiveFloor)
    #expect(blocked.from == 10 && blocked.to == 1 && blocked.forecast?.replicas == 10)
    #expect(
      blocked.detail.hasSuffix("predictive floor 10: concurrency forecast 100 within 2m15s / 10 per replica"))
    // Released when the last three whole 5-minute slots (recent: 15m) saw nothing: 12:15.
    let down = try #require(harness.events(.scaleDown).first { $0.time >= noon })
    #expect(down.time == Self.time(day: 2, 12 * 3600 + 15 * 60))
    #expect(down.to == 1)
    let released = try #require(down.forecast)
    #expect(released.replicas == 1 && released.scale < 0.1)
  }

  @Test("a quieter day lowers the floor in proportion to its recent peaks")
  func quieterDayScalesTheFloor() throws {
    // Day two runs at 60% of day one, its night included.
    let harness = Self.run(try Self.policy(), days: 2) { day, second in
      Self.load(second) * (day == 1 ? 0.6 : 1)
    }
    let morning = try #require(harness.events(.scaleUp).first { $0.time >= Self.time(day: 1, 0) })
    #expect(morning.reason == .predictiveFloor && morning.time == Self.time(day: 1, 9 * 3600 - 135))
    // (6 + 10) / (10 + 10) of the forecast 100: 80, 8 replicas.
    #expect(morning.to == 8 && morning.forecast?.scale == 0.8)
  }

  @Test("missing history turns the floor off with a warning, and it comes back with fresh values")
  func staleHistoryFallsBack() throws {
    // The signal is missing for two hours on day two's night (stale after 1h).
    let harness = Self.run(try Self.policy(), days: 2) { day, second in
      day == 1 && second >= 3600 && second < 3 * 3600 ? nil : Self.load(second)
    }
    let warnings = harness.events(.warning).filter { $0.time >= Self.time(day: 1, 0) }
    #expect(warnings.count == 1)
    #expect(warnings.first?.time == Self.time(day: 1, 3600 + 3600))
    #expect(warnings.first?.detail.contains("past stale_after 1h") == true)
    #expect(
      harness.events(.predictiveFloor).map(\.time) == [Self.time(day: 1, 0), Self.time(day: 1, 3 * 3600)])
    // The morning floor is back in time.
    let morning = try #require(harness.events(.scaleUp).first { $0.time >= Self.time(day: 1, 0) })
    #expect(morning.reason == .predictiveFloor)
  }

  @Test(
    "history learned from a recording gives a floor on the first day, and nothing after `before` is learned")
  func learnedHistorySeedsTheFloor() throws {
    let policy = try Self.policy()
    var harness = EngineHarness(policy, replicas: ["model": 1])
    let yesterday = stride(from: -86_400.0, to: 0, by: 60).map {
      (time: t0.addingTimeInterval(Self.midnight + $0), value: Self.load($0 + 86_400))
    }
    // A spike after `before` that must not be learned.
    let future = [(time: Self.time(day: 0, 3 * 3600), value: 1000.0)]
    harness.engine.learn(
      yesterday + future, for: "model", before: Self.time(day: 0, 0), state: &harness.state)
    var second = 0.0
    while second < 12 * 3600 {
      harness.tick(at: Self.midnight + second, ["concurrency": Self.load(second)])
      second += 15
    }
    #expect(harness.events(.warning).isEmpty)
    #expect(harness.events(.predictiveFloor).map(\.time) == [Self.time(day: 0, 0)])
    let ups = harness.events(.scaleUp)
    #expect(ups.first?.time == Self.time(day: 0, 9 * 3600 - 135) && ups.first?.reason == .predictiveFloor)
    #expect(ups.allSatisfy { $0.to ?? 0 <= 10 })
  }

  @Test("max_added caps what the floor adds, and the ceilings bind it")
  func capsAndCeilings() throws {
    let capped = Self.run(try Self.policy(predictive: "{max_added: 3}"), days: 2)
    let morning = try #require(capped.events(.scaleUp).first { $0.time >= Self.time(day: 1, 0) })
    #expect(morning.reason == .predictiveFloor && morning.to == 4)

    let policy = try loadPolicy(
      """
      controller: {interval: 15s}
      processes:
        model:
          startup: 2m
          cost_per_hour_usd: 2
          scaling: {metric: concurrency, target: 10, min: 1, max: 20}
          predictive: {}
      autoscaling:
        model:
          scale_up:
            constraints: [{max_cost_per_hour_usd: 12}]
      """)
    let ceiled = Self.run(policy, days: 2)
    let up = try #require(ceiled.events(.scaleUp).first { $0.time >= Self.time(day: 1, 0) })
    #expect(up.reason == .predictiveFloor && up.to == 6)
    let held = try #require(ceiled.events(.blocked).first { $0.time == up.time })
    #expect(held.reason == .costCeiling && held.to == 10)
  }

  @Test("the audit record carries the reason and the forecast")
  func auditRecordHasTheForecast() throws {
    let harness = Self.run(try Self.policy(), days: 2)
    let up = try #require(harness.events(.scaleUp).first { $0.reason == .predictiveFloor })
    let line = AuditRecord(up, mode: .replay).jsonLine()
    #expect(line.contains(#""reason":"predictive_floor""#))
    #expect(
      line.contains(
        #""forecast":{"forecast":100,"history_from":"2023-11-15T00:00:00Z","history_to":"2023-11-16T08:57:45Z","load":100,"lookahead_s":135,"per_replica":10,"periods":1,"replicas":10,"scale":1,"source":"learned from what it sees"}"#
      ))
  }

  @Test("a restart keeps the history: the saved state decodes to the same forecasts")
  func historySurvivesEncoding() throws {
    let harness = Self.run(try Self.policy(), days: 2)
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .secondsSince1970
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .secondsSince1970
    let decoded = try decoder.decode(EngineState.self, from: try encoder.encode(harness.state))
    #expect(decoded.forecasts == harness.state.forecasts)
    #expect(decoded.forecasts["model"]?.history.periods.count == 2)
    #expect(decoded.problems(now: Self.time(day: 2, 0)).isEmpty)
    // A state saved before forecasts existed still reads.
    let old = #"{"targets":{},"budgets":{},"missingSignals":[]}"#
    #expect(try decoder.decode(EngineState.self, from: Data(old.utf8)).forecasts.isEmpty)
  }

  @Test("a reload that changes the slots starts the history afresh instead of misreading it")
  func reloadChangingSlots() throws {
    var harness = Self.run(try Self.policy(), days: 2)
    #expect(harness.state.forecasts["model"]?.history.periods.first?.peaks.count == 288)
    let reloaded = ScalingEngine(policy: try Self.policy(predictive: "{resolution: 15m}"))
    let (decision, next) = reloaded.decide(
      EngineInputs(signals: ["concurrency": 10], replicas: ["model": ReplicaStatus(1)]), state: harness.state,
      now: Self.time(day: 2, 0))
    harness.state = next
    #expect(next.forecasts["model"]?.history.periods.map(\.peaks.count) == [96])
    #expect(decision.events.map(\.kind) == [.warning])
  }

  @Test("settings: defaults, and what is refused")
  func settings() throws {
    let settings = try #require(try Self.policy().targets.first?.predictive)
    #expect(settings.signal == "concurrency" && settings.perReplica == 10 && settings.lookahead == 135)
    #expect(settings.resolution == 300 && settings.quantile == 0.9 && settings.refresh == 600)
    #expect(settings.keep == 14 * 86_400 && settings.history == .learned)

    let weekly = try #require(
      try Self.policy(predictive: "{seasonality: weekly, history: {file: rec.csv}, lookahead: 5m}").targets
        .first?
        .predictive)
    #expect(weekly.keep == 28 * 86_400 && weekly.history == .file("rec.csv") && weekly.lookahead == 300)
    // The documented default, written out in days, and a year of weeks.
    let days = try #require(try Self.policy(predictive: "{keep: 14d}").targets.first?.predictive)
    #expect(days.keep == 14 * 86_400)
    let year = try #require(
      try Self.policy(predictive: "{seasonality: weekly, keep: 364d}").targets.first?.predictive)
    #expect(year.keep == 364 * 86_400)

    let text = refusal(
      """
      processes:
        gpu:
          scaling: {metric: util, target: 70%, min: 1, max: 4}
          predictive: {resolution: 7m, history: maybe, colour: blue}
      """)
    #expect(text.contains("p.yaml:2:3: error: processes.gpu.predictive needs signal"))
    #expect(text.contains("p.yaml:4:50: error: unknown key 'colour' in processes.gpu.predictive"))
    #expect(!text.contains("resolution is"), "the rest waits until the signal is known")
  }

  @Test("history: prometheus on a signal that is not read from Prometheus is refused at the process")
  func prometheusHistoryNeedsAPrometheusSignal() {
    let text = refusal(
      """
      signals:
        q: {directory: {path: spool}}
      processes:
        w:
          scaling: {metric: q, target: 10, min: 1, max: 4}
          predictive: {history: prometheus}
      """)
    #expect(
      text.contains(
        "p.yaml:4:3: error: processes.w.predictive has history: prometheus, which reads the signal's own query, but 'q' is not read from Prometheus"
      ), "\(text)")
  }

  @Test("per-field errors carry their line and column")
  func fieldErrors() {
    let text = refusal(
      """
      processes:
        gpu:
          scaling: {metric: q, target: 10, min: 1, max: 4}
          predictive: {resolution: 7m, history: maybe, keep: 2h}
      """)
    #expect(text.contains("p.yaml:4:30: error: resolution is 7m: use at least 1m that divides a day evenly"))
    #expect(
      text.contains(
        "p.yaml:4:43: error: history is 'maybe': use learned, prometheus, or {file: RECORDING.csv}"))
    #expect(text.contains("p.yaml:4:56: error: keep is 2h, less than the day a daily profile needs"))
  }
}
