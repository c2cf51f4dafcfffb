import Foundation
import Testing

@testable import CapstanCore

/// A model server `m` sized on a TTFT and an ITL objective, from 1 to 8 replicas, with its
/// scale-down window at 0 so each tick's sizing shows.
/// `ttft` is added to the TTFT objective's keys, such as `, within: good, period: 24h`.
func sloServer(extra: String = "", waiting: Bool = true, ttft: String = "") throws -> Policy {
  try loadPolicy(sloServerText(extra: extra, waiting: waiting, ttft: ttft))
}

/// The policy text of `sloServer`, for a refusal.
func sloServerText(extra: String = "", waiting: Bool = true, ttft: String = "") -> String {
  """
  processes:
    m:
      startup: 2m
      cost_per_hour_usd: 4
      scaling:
        min: 1
        max: 8
        slo:
          - {latency: ttft, percentile: 99, bound: 2s, measured: ttft\(ttft)}
          - {latency: itl, percentile: 99, bound: 50ms, measured: itl}
        load: rate
        running: running
  \(waiting ? "      waiting: waiting" : "")
  \(extra)
  autoscaling:
    m:
      scale_down: {stabilization_window: 0s}
  """
}

@Suite("Latency models learned online")
struct LatencyModelTests {
  @Test("a line is recovered from samples across a range of concurrency")
  func recoversLine() throws {
    var model = LatencyModel()
    for index in 0..<40 {
      let concurrency = Double(1 + index % 20)
      model.add(concurrency: concurrency, latency: 0.02 + 0.001 * concurrency)
    }
    let fit = try #require(model.status.fit)
    #expect(abs(fit.alpha - 0.02) < 1e-9)
    #expect(abs(fit.beta - 0.001) < 1e-9)
    #expect(fit.rSquared > 0.999)
    // Noiseless: the headroom is nothing, and 50 ms allows (0.05 - 0.02) / 0.001 = 30 at once,
    // but the model is not trusted past the 40 asked for.
    #expect(abs(fit.capacity(within: 0.05, limit: 40) - 30) < 1e-6)
    #expect(fit.capacity(within: 0.05, limit: 12) == 12)
    #expect(fit.capacity(within: 0.01, limit: 40) == 0)
  }

  @Test("too few samples, too narrow a range, or a falling line is not used")
  func guards() throws {
    var model = LatencyModel()
    for _ in 0..<(LatencyModel.minSamples - 1) { model.add(concurrency: 4, latency: 0.03) }
    #expect(model.status == .learning(samples: LatencyModel.minSamples - 1, buckets: 1))
    for _ in 0..<30 { model.add(concurrency: 4, latency: 0.03) }
    // Many samples, one concurrency: no slope to learn.
    #expect(model.status.fit == nil)

    var falling = LatencyModel()
    for index in 0..<40 {
      let concurrency = Double(1 + index % 10)
      falling.add(concurrency: concurrency, latency: 0.05 - 0.001 * concurrency)
    }
    guard case .rejected(let fit) = falling.status else {
      Issue.record("a falling line was used: \(falling.status)")
      return
    }
    #expect(fit.beta < 0)

    // Values that are not latencies are left out.
    var hostile = LatencyModel()
    for value in [Double.nan, .infinity, -1] { hostile.add(concurrency: 2, latency: value) }
    hostile.add(concurrency: .nan, latency: 0.1)
    #expect(hostile.samples == 0)
  }

  @Test("a long stay at one concurrency keeps what was learned at the others")
  func keepsRange() throws {
    var model = LatencyModel()
    for index in 0..<40 {
      let concurrency = Double(1 + index % 16)
      model.add(concurrency: concurrency, latency: 0.02 + 0.001 * concurrency)
    }
    for _ in 0..<2000 { model.add(concurrency: 8, latency: 0.028) }
    let fit = try #require(model.status.fit)
    #expect(abs(fit.beta - 0.001) < 1e-6)
  }

  @Test("Erlang C, against the closed form for two servers")
  func erlangC() {
    // M/M/2 at 1 erlang: C = a² / (a² + 2(2 − a)(1 + a)) · … = 1/3.
    #expect(abs(SLOSizer.erlangC(servers: 2, offered: 1) - 1.0 / 3) < 1e-12)
    #expect(SLOSizer.erlangC(servers: 1, offered: 0.5) == 0.5)
    #expect(SLOSizer.erlangC(servers: 4, offered: 5) == 1)
  }

  @Test("the load's trend looks a startup ahead when rising, and never below zero")
  func trend() throws {
    var trend = LoadTrend()
    #expect(trend.forecast(ahead: 120) == nil)
    for tick in 0..<60 { trend.add(Double(tick), at: t0.addingTimeInterval(Double(tick) * 15), tick: 15) }
    let rising = try #require(trend.forecast(ahead: 120))
    // The load rises 1/s every 15 s; the smoothed level lags it, the slope makes up part of that.
    #expect(rising > trend.level)
    #expect(trend.slope > 0)
    for tick in 60..<200 { trend.add(0, at: t0.addingTimeInterval(Double(tick) * 15), tick: 15) }
    #expect((trend.forecast(ahead: 120) ?? -1) >= 0)
    #expect(trend.forecast(ahead: 120) ?? 1 < 0.1)
  }
}

@Suite("Scaling on the SLO")
struct SLOEngineTests {
  @Test("the policy loads: objectives, load signals, and every signal among those read")
  func loads() throws {
    let policy = try sloServer()
    let slo = try #require(policy.target(named: "m")?.slo)
    #expect(slo.objectives.map(\.latency) == [.ttft, .itl])
    #expect(slo.objectives.map(\.bound) == [2, 0.05])
    #expect(slo.load == "rate" && slo.running == "running" && slo.waiting == "waiting")
    #expect(policy.target(named: "m")?.proposalSignalNames == ["rate", "running", "waiting", "ttft", "itl"])
    // One objective as a mapping loads as a list of one.
    let single = try loadPolicy(
      """
      processes:
        q:
          class: batch
          scaling: {min: 0, max: 4, slo: {latency: queue_wait, bound: 1m, measured: wait}, load: r, running: n}
      """)
    #expect(single.target(named: "q")?.slo?.objectives.first?.percentile == 99)
  }

  @Test(
    "bad SLOs are refused at their line",
    arguments: [
      ("{latency: ttft, percentile: 99, bound: 2s}", "p.yaml:5:22: error: no signal measures ttft"),
      ("{latency: ttft, percentile: 0, bound: 2s, measured: t}", "p.yaml:5:40: error: percentile is '0'"),
      ("{latency: ttft, percentile: 100, bound: 2s, measured: t}", "p.yaml:5:40: error: percentile is '100'"),
      ("{latency: ttft, bound: 0s, measured: t}", "p.yaml:5:35: error: bound is 0s"),
      ("{latency: tbt, bound: 2s, measured: t}", "p.yaml:5:22: error: slo latency is 'tbt'"),
      ("{latency: ttft, bound: 2s, measured: t, target: 99}", "p.yaml:5:52: error: unknown key 'target'"),
      (
        "[{latency: ttft, bound: 2s, measured: t}, {latency: ttft, bound: 3s, measured: u}]",
        "p.yaml:5:64: error: a second slo on ttft"
      ),
    ])
  func refused(slo: String, message: String) {
    let text = refusal(
      """
      processes:
        m:
          scaling:
            max: 4
            slo: \(slo)
            load: r
            running: n
      """)
    #expect(text.contains(message), "\(text)")
  }

  @Test("an objective refused for its bound still reads its signals: no warning that nothing reads them")
  func refusedStillReads() {
    let text = refusal(
      """
      signals:
        t: {command: [echo, '1']}
        good: {command: [echo, '1']}
      processes:
        m:
          scaling:
            max: 4
            slo: {latency: ttft, bound: 2, measured: t, within: good}
            load: r
            running: n
      """)
    #expect(text.contains("'2' has no unit"), "\(text)")
    #expect(!text.contains("no process or policy reads it"), "\(text)")
  }

  @Test("an SLO without a load or running signal is refused")
  func refusedWhole() {
    let noLoad = refusal(
      """
      processes:
        m:
          scaling: {max: 4, running: n, slo: {latency: itl, bound: 50ms, measured: i}}
      """)
    #expect(noLoad.contains("scaling.slo needs scaling.load"), "\(noLoad)")
    let noRunning = refusal(
      """
      processes:
        m:
          scaling: {max: 4, load: r, slo: {latency: itl, bound: 50ms, measured: i}}
      """)
    #expect(noRunning.contains("scaling.slo needs scaling.running"), "\(noRunning)")
  }

  @Test("an empty slo is refused, and load or running without an slo is a warning that they do nothing")
  func emptyAndStray() throws {
    let empty = refusal(
      """
      processes:
        m:
          scaling: {max: 4, load: r, running: n, slo: []}
      """)
    #expect(empty.contains("p.yaml:3:49: error: slo is empty"), "\(empty)")
    let stray = try PolicyLoader.load(
      yaml: """
        processes:
          m:
            scaling: {metric: q, target: 5, max: 4, load: r, running: n}
        """, file: "p.yaml")
    #expect(
      stray.warnings.map(\.description) == [
        "p.yaml:3:51: warning: 'r' has no effect: process 'm' has no scaling.slo",
        "p.yaml:3:63: warning: 'n' has no effect: process 'm' has no scaling.slo",
      ])
  }

  @Test("before the models are ready, a band rule on the measured latency, never down on a missing one")
  func band() throws {
    var harness = EngineHarness(try sloServer(), replicas: ["m": 2])
    // Above a bound: one more, reason model_not_ready, with why in the record.
    harness.tick(at: 0, ["rate": 10, "running": 20, "waiting": 0, "ttft": 2.5, "itl": 0.03])
    #expect(harness.replicas["m"] == 3)
    let up = try #require(harness.events(.scaleUp).first)
    #expect(up.reason == .modelNotReady)
    #expect(up.detail.contains("ttft p99 2.5s (bound 2s)"), "\(up.detail)")
    #expect(up.detail.contains("ttft has 0 samples over 0 concurrencies (needs 20 over 3)"), "\(up.detail)")
    #expect(up.slo?.mode == .band)
    // Replicas starting (3 asked, 2 ready): no second step on the same breach.
    harness.ready["m"] = 2
    harness.tick(at: 15, ["rate": 10, "running": 20, "waiting": 0, "ttft": 2.5, "itl": 0.03])
    #expect(harness.replicas["m"] == 3)
    harness.ready = [:]
    // Everything under half its bound, but the ITL is missing: no scale-down.
    harness.tick(at: 30, ["rate": 1, "running": 2, "waiting": 0, "ttft": 0.2])
    #expect(harness.replicas["m"] == 3)
    // Under half of every bound, nothing waiting: one fewer.
    harness.tick(at: 45, ["rate": 1, "running": 2, "waiting": 0, "ttft": 0.2, "itl": 0.02])
    #expect(harness.replicas["m"] == 2)
    #expect(harness.events(.scaleDown).first?.reason == .modelNotReady)
  }

  @Test("the band rule removes a replica only where the requests running would still fit on one fewer")
  func bandConsolidates() throws {
    var harness = EngineHarness(try sloServer(), replicas: ["m": 2])
    // 13 a replica, every latency far under its bound: one fewer would run 26 at once, more than
    // a replica has been seen to run within half its bounds, and a latency that includes waiting
    // says nothing about that until the slots fill.
    harness.tick(at: 0, ["rate": 3, "running": 26, "waiting": 0, "ttft": 0.5, "itl": 0.02])
    #expect(harness.replicas["m"] == 2)
    // Half the load: 12 on one replica, within the 13 seen.
    harness.tick(at: 15, ["rate": 1.5, "running": 12, "waiting": 0, "ttft": 0.5, "itl": 0.02])
    #expect(harness.replicas["m"] == 1)
    #expect(harness.events(.scaleDown).first?.reason == .modelNotReady)

    // Where a replica's slots have been seen, they are the room, not the most seen within the
    // bounds: 30 running on three fit two replicas of 16 slots (15 each).
    var slotted = EngineHarness(try sloServer(), replicas: ["m": 3])
    var target = TargetState()
    var learned = SLOState()
    learned.fullAt = 16
    learned.comfortable = 20
    target.slo = learned
    slotted.state.targets["m"] = target
    slotted.tick(at: 0, ["rate": 3, "running": 30, "waiting": 0, "ttft": 0.5, "itl": 0.02])
    #expect(slotted.replicas["m"] == 2)
    // 30 on one replica of 16 slots: held, though a replica has run 20 within the bounds.
    slotted.tick(at: 15, ["rate": 3, "running": 30, "waiting": 0, "ttft": 0.5, "itl": 0.02])
    #expect(slotted.replicas["m"] == 2)

    // A hold says why.
    let slo = try #require(try sloServer().targets.first { $0.name == "m" }?.slo)
    let observation = SLOObservation(
      load: 3, running: 30, waiting: 0, measured: [0.5, 0.02], status: ReplicaStatus(current: 2, ready: 2),
      now: t0, tick: 15)
    var held: String?
    #expect(SLOSizer.band(observation, slo, state: learned, held: &held) == 2)
    #expect(held == "the 30 requests running would put 30 on each replica of one fewer, above its 16 slots")
    learned.fullAt = nil
    #expect(SLOSizer.band(observation, slo, state: learned, held: &held) == 2)
    #expect(
      held
        == "the 30 requests running would put 30 on each replica of one fewer, above the 20 at once seen well within the bounds"
    )
  }

  @Test("an idle process's missing latency holds nothing: it goes to zero, and comes back with load")
  func idleToZero() throws {
    let policy = try loadPolicy(
      """
      processes:
        q:
          class: batch
          scaling: {min: 0, max: 4, load: r, running: n, slo: {latency: itl, bound: 50ms, measured: i}}
      autoscaling:
        q:
          scale_up: {stabilization_window: 0s}
          scale_down: {stabilization_window: 0s}
      """)
    var harness = EngineHarness(policy, replicas: ["q": 2])
    // Load arrives and runs, but the latency is missing: an outage, so no scale-down.
    harness.tick(at: 0, ["r": 2, "n": 1])
    #expect(harness.replicas["q"] == 2)
    // Load arrives, every latency low: one fewer, but never the last one.
    harness.tick(at: 15, ["r": 2, "n": 1, "i": 0.01])
    harness.tick(at: 30, ["r": 2, "n": 1, "i": 0.01])
    #expect(harness.replicas["q"] == 1)
    // Nothing arrives or runs: the missing latency is silence, and the last replica goes.
    harness.tick(at: 45, ["r": 0, "n": 0])
    #expect(harness.replicas["q"] == 0)
    harness.tick(at: 60, ["r": 3, "n": 0])
    #expect(harness.replicas["q"] == 1)
    #expect(harness.events.last?.detail.hasSuffix("load arrives with no replica running, so 1") == true)
  }

  /// Ticks of a server whose ITL is 20 ms + 1 ms a request, whose TTFT is 300 ms + 10 ms a
  /// request, whose requests each stay 5 s, at a load that steps every 5 minutes.
  func learned(_ harness: inout EngineHarness, ticks: Int) {
    for tick in 0..<ticks {
      let replicas = Double(harness.replicas["m"] ?? 1)
      let rate = 4 + Double((tick / 20) % 8) * 2
      let running = rate * 5
      let b = running / replicas
      harness.tick(
        at: Double(tick) * 15,
        ["rate": rate, "running": running, "waiting": 0, "ttft": 0.3 + 0.01 * b, "itl": 0.02 + 0.001 * b])
    }
  }

  @Test("once learned, replicas come from the models, the forecast and Little's law, all in the record")
  func sized() throws {
    var harness = EngineHarness(try sloServer(), replicas: ["m": 4])
    learned(&harness, ticks: 160)
    let record = try #require(harness.events.last { $0.slo?.mode == .model })
    let sizing = try #require(record.slo)
    let itl = try #require(sizing.objectives.first { $0.latency == .itl }?.fit)
    // Each latency is paired with the concurrency smoothed over its minute, which trails a
    // step for a few ticks: near the law, not on it.
    #expect(abs(itl.alpha / 0.02 - 1) < 0.05 && abs(itl.beta / 0.001 - 1) < 0.05, "\(itl)")
    // ITL within 50 ms allows about 30 at once; TTFT within 2 s about 170; so the ITL's.
    let capacity = try #require(sizing.capacity)
    #expect(capacity == sizing.objectives.first { $0.latency == .itl }?.capacity)
    #expect(abs(capacity / 30 - 1) < 0.1)
    // Requests stay 5 s at the mean concurrency measured; at `capacity` at once each decode
    // step is longer, and so is each request.
    let duration = try #require(sizing.duration)
    #expect(duration > 5)
    let expected = Int((sizing.forecast * duration / capacity - 1e-9).rounded(.up))
    #expect(sizing.replicas == expected)
    #expect(record.detail.contains("itl = "), "\(record.detail)")
    #expect(record.detail.hasSuffix(" a replica → \(expected)"), "\(record.detail)")
    let json = AuditRecord(record, mode: .replay).jsonLine()
    #expect(json.contains(#""mode":"model""#) && json.contains(#""alpha":"#), "\(json)")
    #expect(json.contains(#""latency":"itl""#) && json.contains(#""duration_s":"#), "\(json)")

    // The model says no more, but the measured ITL is above its bound: one more.
    let current = harness.replicas["m"] ?? 0
    harness.tick(at: 160 * 15, ["rate": 1, "running": 5, "waiting": 0, "ttft": 0.4, "itl": 0.06])
    #expect(harness.replicas["m"] == current + 1, "\(harness.events.suffix(2).map(\.detail))")
    #expect(harness.events.last?.slo?.corrected == true, "\(harness.events.suffix(2))")
  }

  @Test(
    "slots are learned from a settled fleet with a request waiting a replica on two ticks in a row, not from one waiting between steps"
  )
  func slots() throws {
    let policy = try loadPolicy(
      """
      processes:
        m:
          scaling:
            min: 4
            max: 4
            slo: {latency: itl, bound: 50ms, measured: itl}
            load: rate
            running: running
            waiting: waiting
            measured_over: 30s
      """)
    var harness = EngineHarness(policy, replicas: ["m": 4])
    func slots() -> Double? { harness.state.targets["m"]?.slo?.fullAt }
    // 2 a replica, and one request waiting for the next step somewhere: not full.
    for tick in 0..<8 {
      harness.tick(at: Double(tick) * 15, ["rate": 4, "running": 8, "waiting": 1, "itl": 0.03])
    }
    #expect(slots() == nil)
    // A request a replica waiting on every other tick, as requests arriving between steps
    // are found now and then: the steady 2 a replica is not taken for full.
    for tick in 8..<11 {
      harness.tick(
        at: Double(tick) * 15, ["rate": 4, "running": 8, "waiting": tick == 9 ? 1 : 4, "itl": 0.03])
    }
    #expect(slots() == nil)
    // 16 a replica with 6 waiting: full at 16. The first ticks of the rise are not steady.
    for tick in 11..<19 {
      harness.tick(at: Double(tick) * 15, ["rate": 20, "running": 64, "waiting": 6, "itl": 0.04])
    }
    #expect(slots() == 16)
    // A floor that only rises: fewer running later does not lower it.
    for tick in 19..<23 {
      harness.tick(at: Double(tick) * 15, ["rate": 8, "running": 32, "waiting": 4, "itl": 0.03])
    }
    #expect(slots() == 16)
  }

  @Test("where the queueing check adds replicas, the record names the slots and the arrivals' dispersion")
  func queueingRecord() throws {
    var harness = EngineHarness(try sloServer(), replicas: ["m": 4])
    learned(&harness, ticks: 160)
    // Full: requests wait on every replica for several ticks at a steady 22.5 a replica, so the
    // slots are 22.5, fewer than the 30 the ITL allows, and Little's law's count leaves no
    // spare slot for bursts: the queueing check adds one.
    let replicas = Double(harness.replicas["m"] ?? 4)
    for tick in 160..<172 {
      let running = 22.5 * replicas
      harness.tick(
        at: Double(tick) * 15,
        ["rate": running / 5, "running": running, "waiting": 2 * replicas, "ttft": 0.5, "itl": 0.0425])
    }
    let record = try #require(harness.events.last { ($0.slo?.replicas ?? 0) > ($0.slo?.byLittle ?? .max) })
    let sizing = try #require(record.slo)
    let dispersion = try #require(sizing.dispersion)
    #expect(dispersion >= 1)
    #expect(sizing.slots == 22.5)
    #expect(
      record.detail.contains(
        "on 22.5 slots a replica (Erlang C, arrivals' dispersion \(format((dispersion * 100).rounded() / 100))) need \(sizing.replicas)"
      ), "\(record.detail)")
    #expect(AuditRecord(record, mode: .replay).jsonLine().contains(#""dispersion":"#))
  }

  @Test("measured_over sets when samples start, and 0 is refused at its line")
  func measuredOver() throws {
    let policy = try loadPolicy(
      """
      processes:
        m:
          scaling: {max: 4, load: r, running: n, measured_over: 10s, slo: {latency: itl, bound: 50ms, measured: i}}
      """)
    #expect(policy.target(named: "m")?.slo?.measuredOver == 10)
    #expect(policy.target(named: "m")?.slo?.summary.contains("latencies measured over 10 s") == true)
    let zero = refusal(
      """
      processes:
        m:
          scaling: {max: 4, load: r, running: n, measured_over: 0s, slo: {latency: itl, bound: 50ms, measured: i}}
      """)
    #expect(zero.contains("p.yaml:3:59: error: measured_over is 0"), "\(zero)")
  }

  @Test("what was learned survives a restart with the saved state")
  func survivesRestart() throws {
    var harness = EngineHarness(try sloServer(), replicas: ["m": 4])
    learned(&harness, ticks: 40)
    let saved = try JSONEncoder().encode(harness.state)
    let restored = try JSONDecoder().decode(EngineState.self, from: saved)
    #expect(restored == harness.state)
    #expect(restored.problems(now: t0.addingTimeInterval(3600)).isEmpty)
    let model = try #require(restored.targets["m"]?.slo?.latencies["itl"])
    #expect(model.status.fit != nil)
  }
}

@Suite("An SLO on a process with variants")
struct SLOVariantTests {
  /// H100s ($4.10, a unit of capacity, a 2-minute startup) and L4s ($1.20, half a unit, 4
  /// minutes), sized on an ITL objective.
  static let policy = """
    processes:
      m:
        scaling:
          min: 1
          max: 12
          slo: {latency: itl, percentile: 99, bound: 50ms, measured: itl}
          load: rate
          running: running
        variants:
          h100: {cost_per_hour_usd: 4.10, capacity: 1, max: 8, startup: 2m}
          l4: {cost_per_hour_usd: 1.20, capacity: 0.5, max: 4, startup: 4m}
    autoscaling:
      m:
        scale_down: {stabilization_window: 0s}
    """

  @Test(
    "the model is learned per unit of capacity, exactly, and the capacity it asks for is filled cheapest first"
  )
  func learnsPerUnit() throws {
    let policy = try loadPolicy(Self.policy)
    // The process looks the longest startup of its variants ahead.
    #expect(policy.variantGroup(named: "m")?.process.startup == 240)
    // Three L4s: 1.5 units, which the process's rules count as 1. ITL is 20 ms + 1 ms for
    // each request a unit of capacity runs: learned per unit only where the concurrency is
    // running over 1.5, not over 1.
    var harness = EngineHarness(policy, replicas: ["m.h100": 0, "m.l4": 3])
    for tick in 0..<160 {
      let capacity = 0.5 * Double(harness.replicas["m.l4"] ?? 0) + Double(harness.replicas["m.h100"] ?? 0)
      let rate = 1 + Double((tick / 20) % 6) * 0.5
      let running = rate * 5
      harness.tick(
        at: Double(tick) * 15, ["rate": rate, "running": running, "itl": 0.02 + 0.001 * running / capacity])
    }
    let fit = try #require(harness.state.targets["m"]?.slo?.latencies["itl"]?.status.fit)
    #expect(abs(fit.alpha / 0.02 - 1) < 0.05 && abs(fit.beta / 0.001 - 1) < 0.05, "\(fit)")
    // One unit carries the load: the dearest capacity goes, an L4 of the three.
    #expect(harness.replicas == ["m.h100": 0, "m.l4": 2])

    // 20 requests a second: more than the L4s' two units carry. They fill to their max, and
    // H100s carry the rest, in one decision.
    let before = harness.events.count
    harness.tick(at: 160 * 15, ["rate": 20, "running": 100, "itl": 0.04])
    let moves = harness.events[before...].filter { $0.kind == .scaleUp }
    #expect(moves.map(\.process) == ["m.l4", "m.h100"], "\(moves.map(\.detail))")
    #expect(moves.allSatisfy { $0.reason == .slo }, "\(moves.map(\.detail))")
    let sizing = try #require(moves.first?.slo)
    let capacity = try #require(sizing.capacity)
    let duration = try #require(sizing.duration)
    let wanted = Int((sizing.forecast * duration / capacity - 1e-9).rounded(.up))
    #expect(sizing.mode == .model && wanted == sizing.replicas && wanted > 2, "\(sizing)")
    #expect(harness.replicas == ["m.h100": wanted - 2, "m.l4": 4])
    let detail = try #require(moves.first?.detail)
    #expect(detail.contains("m capacity 1 -> \(wanted) (wanted \(wanted))"), "\(detail)")
    #expect(detail.contains(" a unit of capacity → \(wanted)"), "\(detail)")
  }

  @Test("a missing load or latency holds every variant; with both in and low, the dearest unit goes first")
  func missingHolds() throws {
    var harness = EngineHarness(try loadPolicy(Self.policy), replicas: ["m.h100": 2, "m.l4": 4])
    // No load signal: the process's capacity is held, and no variant moves.
    harness.tick(at: 0, ["running": 5, "itl": 0.01])
    // Load arrives but the latency is not measured: no scale-down on a missing latency.
    harness.tick(at: 15, ["rate": 1, "running": 5])
    #expect(harness.replicas == ["m.h100": 2, "m.l4": 4], "\(harness.events.map(\.detail))")
    #expect(harness.events.allSatisfy { $0.kind != .scaleDown })
    // Both in, the latency under half its bound, and the requests running fit one unit fewer
    // at no more than one a unit: the band rule gives up a unit, an H100.
    harness.tick(at: 30, ["rate": 1, "running": 2, "itl": 0.01])
    #expect(harness.replicas == ["m.h100": 1, "m.l4": 4], "\(harness.events.map(\.detail))")
  }

  @Test(
    "a fleet of variants is counted in units of capacity exactly: per-unit concurrency, a new mix is a new fleet, and an L4 starting is a replica starting"
  )
  func exactCapacity() {
    let policy = SLOScaling(
      objectives: [SLOScaling.Objective(latency: .itl, percentile: 99, bound: 0.05, measured: "itl")],
      load: "rate", running: "running", waiting: nil, measuredOver: 60)
    var state = SLOState()
    // Three L4s at half a unit: 1.5 units, which a whole-unit count rounds to 1.
    let observation = SLOObservation(
      load: 3, running: 24, waiting: nil, measured: [0.03], status: ReplicaStatus(current: 1, ready: 1),
      now: t0, tick: 15, capacity: ExactCapacity(current: 1.5, ready: 1.5))
    SLOSizer.learn(observation, policy, state: &state)
    #expect(state.concurrency == 16)
    #expect(state.replicasSince == t0)
    // An L4 fewer: the same whole unit, another fleet. Its samples wait out `measured_over`
    // again, and a wait seen before does not count toward the slots.
    var fewer = observation
    fewer.capacity = ExactCapacity(current: 1, ready: 1)
    fewer.waiting = 2
    fewer.now = t0.addingTimeInterval(15)
    SLOSizer.learn(fewer, policy, state: &state)
    #expect(state.replicasSince == fewer.now && state.waitingSince == fewer.now)
    fewer.capacity = ExactCapacity(current: 1.5, ready: 1.5)
    fewer.now = t0.addingTimeInterval(30)
    SLOSizer.learn(fewer, policy, state: &state)
    #expect(state.replicasSince == fewer.now && state.waitingSince == fewer.now)
    // The third L4 starting: 1 unit of 1.5 ready, the same whole unit ready as running. No
    // sample is taken, and its becoming ready is marked for the measured latency's correction.
    var starting = fewer
    starting.capacity = ExactCapacity(current: 1.5, ready: 1)
    starting.running = 40
    starting.now = t0.addingTimeInterval(45)
    #expect(starting.starting && starting.status.ready == starting.status.current)
    let before = state.concurrency
    SLOSizer.learn(starting, policy, state: &state)
    #expect(state.concurrency == before && state.starting == true)
    var ready = starting
    ready.capacity = ExactCapacity(current: 1.5, ready: 1.5)
    ready.now = t0.addingTimeInterval(60)
    SLOSizer.learn(ready, policy, state: &state)
    #expect(state.readyAt == ready.now)
  }
}
