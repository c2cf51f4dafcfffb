import Foundation
import Testing

@testable import CapstanCore

/// `sloServer`, its TTFT judged over a rolling day where `budget` is set (its share within the
/// bound from the signal `good`).
func budgetServer(budget: Bool) throws -> Policy {
  try sloServer(ttft: budget ? ", within: good, period: 24h" : "")
}

@Suite("Error budgets over a rolling period")
struct ErrorBudgetTests {
  let day: TimeInterval = 86_400

  /// `ticks` ticks of 15 s from `start` seconds, each at `load` requests a second with `within`
  /// of them inside the bound.
  func counted(
    _ budget: inout ErrorBudget, from start: TimeInterval = 0, ticks: Int, load: Double, within: Double
  ) {
    for tick in 0...ticks {
      budget.add(
        load: load, within: within, at: t0.addingTimeInterval(start + Double(tick) * 15), period: day,
        longest: 60)
    }
  }

  @Test("requests and misses are counted tick by tick, and a slot older than the period ages out")
  func counts() {
    var budget = ErrorBudget()
    counted(&budget, ticks: 240, load: 10, within: 0.98)
    // An hour at 10 a second, 2% of them outside the bound.
    #expect(abs(budget.requests - 36_000) < 1e-6)
    #expect(abs(budget.missed - 720) < 1e-6)
    #expect(budget.slots.count == 4)
    // A day later, with every request inside, the first hour has aged out.
    counted(&budget, from: day, ticks: 240, load: 10, within: 1)
    #expect(budget.missed == 0, "\(budget.slots.prefix(2))")
    #expect(budget.slots.allSatisfy { $0.start > t0.addingTimeInterval(day - 60) })
  }

  @Test(
    "a missing, not-a-number or out-of-range share counts nothing false; a long gap counts at most its longest"
  )
  func badInput() {
    var budget = ErrorBudget()
    budget.add(load: 10, within: 1, at: t0, period: day, longest: 60)
    budget.add(load: 10, within: nil, at: t0.addingTimeInterval(15), period: day, longest: 60)
    budget.add(load: .nan, within: 0.5, at: t0.addingTimeInterval(30), period: day, longest: 60)
    budget.add(load: 10, within: .nan, at: t0.addingTimeInterval(45), period: day, longest: 60)
    #expect(budget.requests == 0)
    // A share above 1 is taken as 1, below 0 as 0.
    budget.add(load: 10, within: 1.5, at: t0.addingTimeInterval(60), period: day, longest: 60)
    budget.add(load: 10, within: -1, at: t0.addingTimeInterval(75), period: day, longest: 60)
    #expect(budget.requests == 300 && budget.missed == 150)
    // The controller was down an hour: one tick counts no more than a minute of requests.
    budget.add(load: 10, within: 1, at: t0.addingTimeInterval(3675), period: day, longest: 60)
    #expect(budget.requests == 900)
    #expect(budget.isSound)
  }

  @Test("the budget is kept in the saved state, and a state saved without one still loads")
  func saved() throws {
    var state = SLOState()
    var budget = ErrorBudget()
    counted(&budget, ticks: 300, load: 10, within: 0.99)
    state.budgets = ["ttft": budget]
    state.aboveAt = t0
    let data = try JSONEncoder().encode(state)
    let loaded = try JSONDecoder().decode(SLOState.self, from: data)
    #expect(loaded == state && loaded.isSound)
    // A state from before budgets: the keys are absent.
    var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    object["budgets"] = nil
    object["aboveAt"] = nil
    let older = try JSONDecoder().decode(SLOState.self, from: JSONSerialization.data(withJSONObject: object))
    #expect(older.budgets == nil && older.aboveAt == nil)
    // A damaged budget is refused with the rest of the state.
    var damaged = state
    damaged.budgets?["ttft"] = try JSONDecoder().decode(
      ErrorBudget.self, from: Data(#"{"slots": [{"start": 0, "requests": 1, "missed": 2}]}"#.utf8))
    #expect(!damaged.isSound)
  }

  @Test("the budget steers only after an hour, by what is left of the period's budget")
  func standing() throws {
    var budget = ErrorBudget()
    counted(&budget, ticks: 200, load: 10, within: 1)
    #expect(budget.standing(percentile: 99, period: day, at: t0.addingTimeInterval(200 * 15)) == nil)
    // Two hours, nothing missed: the day's budget is unspent, and the aim its loosest (5 × 1%).
    counted(&budget, from: 3000, ticks: 280, load: 10, within: 1)
    let unspent = try #require(budget.standing(percentile: 99, period: day, at: t0.addingTimeInterval(7200)))
    #expect(unspent.left == 1 && unspent.share == 1)
    #expect(abs(unspent.aim - 95) < 1e-9)
    // A whole day at exactly the objective: nothing left, aim the objective's own.
    var exact = ErrorBudget()
    counted(&exact, ticks: 5760, load: 10, within: 0.99)
    let spent = try #require(exact.standing(percentile: 99, period: day, at: t0.addingTimeInterval(day)))
    #expect(abs(spent.left) < 1e-3 && abs(spent.aim - 99) < 1e-2, "\(spent)")
    // A day at 98%: spent twice over, aim the tightest (1% / 5).
    var over = ErrorBudget()
    counted(&over, ticks: 5760, load: 10, within: 0.98)
    let overspent = try #require(over.standing(percentile: 99, period: day, at: t0.addingTimeInterval(day)))
    #expect(abs(overspent.left + 1) < 1e-3 && abs(overspent.aim - 99.8) < 1e-6, "\(overspent)")
    // Misses in the first hours spend a share of the day's budget: 2% of an hour's requests is a
    // twelfth of a day's 1%, at the same rate.
    var early = ErrorBudget()
    counted(&early, ticks: 241, load: 10, within: 0.98)
    let first = try #require(early.standing(percentile: 99, period: day, at: t0.addingTimeInterval(3615)))
    #expect(abs(first.left - (1 - 2.0 / 24)) < 1e-3, "\(first)")
  }

  @Test("a budget that is not spent sizes the waiting part for a looser percentile")
  func looserAim() {
    var objective = SLOSizing.ObjectiveState(latency: .ttft, percentile: 99, bound: 2, measured: 1)
    func needed() -> Int {
      (1...100).first {
        SLOSizer.waitsWithin(
          [objective], replicas: $0, slots: 1, inFlight: 40, duration: 10, burstiness: 1)
      } ?? 0
    }
    let held = needed()
    objective.budget = ErrorBudget.Standing(share: 1, counted: 86_400, left: 1, aim: 95)
    let spending = needed()
    objective.budget = ErrorBudget.Standing(share: 0.98, counted: 86_400, left: -1, aim: 99.8)
    let saving = needed()
    #expect(spending <= held && held <= saving)
    #expect(spending < saving, "\(spending) \(held) \(saving)")
  }

  @Test("with half its budget or more left, a latency above its bound is spent, not corrected")
  func spends() throws {
    /// Replicas after one tick with the TTFT above its bound, the load unchanged, after 80
    /// minutes with `good` of requests within it.
    func afterExcursion(good: Double) throws -> (before: Int, after: Int, record: AuditEvent?) {
      var harness = EngineHarness(try budgetServer(budget: true), replicas: ["m": 4])
      func feed(_ tick: Int, ttft: Double? = nil) {
        let rate = tick < 320 ? 4 + Double((tick / 20) % 8) * 2 : 10
        let b = rate * 5 / Double(harness.replicas["m"] ?? 1)
        harness.tick(
          at: Double(tick) * 15,
          [
            "rate": rate, "running": rate * 5, "waiting": 0, "ttft": ttft ?? (0.3 + 0.01 * b),
            "itl": 0.02 + 0.001 * b, "good": good,
          ])
      }
      for tick in 0..<340 { feed(tick) }
      let before = harness.replicas["m"] ?? 0
      let count = harness.events.count
      feed(340, ttft: 2.5)
      return (before, harness.replicas["m"] ?? 0, harness.events.dropFirst(count).last)
    }
    // Nothing missed: the minute above the bound is spent from the budget.
    let unspent = try afterExcursion(good: 1)
    #expect(unspent.after == unspent.before, "\(unspent)")
    // 30% missed: the budget is overspent, and the measured latency adds a replica.
    let overspent = try afterExcursion(good: 0.7)
    #expect(overspent.after == overspent.before + 1, "\(overspent)")
    #expect(overspent.record?.slo?.corrected == true)
  }

  @Test("an overspent budget holds a scale-down for ten minutes after a latency above its bound")
  func overspentHolds() throws {
    /// Replicas at each minute after a latency above its bound, with the load fallen away.
    func afterExcursion(budget: Bool) throws -> [Int] {
      var harness = EngineHarness(try budgetServer(budget: budget), replicas: ["m": 4])
      var tick = 0
      func feed(rate: Double, ttft: Double? = nil) {
        let replicas = Double(harness.replicas["m"] ?? 1)
        let running = rate * 5
        let b = running / replicas
        harness.tick(
          at: Double(tick) * 15,
          [
            "rate": rate, "running": running, "waiting": 0, "ttft": ttft ?? (0.3 + 0.01 * b),
            "itl": 0.02 + 0.001 * b, "good": 0.7,
          ])
        tick += 1
      }
      // The server learns over 80 minutes of a stepping load, 30% of requests outside the bound:
      // more than a day's budget already.
      for step in 0..<320 { feed(rate: 4 + Double((step / 20) % 8) * 2) }
      #expect(harness.events.last { $0.slo?.mode == .model } != nil)
      feed(rate: 18, ttft: 2.5)
      var counts: [Int] = []
      for minute in 1...12 {
        for _ in 0..<4 { feed(rate: 1) }
        if [5, 11].contains(minute) { counts.append(harness.replicas["m"] ?? 0) }
      }
      let after = harness.replicas["m"] ?? 0
      if budget {
        let record = try #require(harness.events.last { $0.slo?.objectives.first?.budget != nil })
        #expect(record.detail.contains("within it over the last "), "\(record.detail)")
        #expect(record.detail.contains("of the error budget left, so sized for p"), "\(record.detail)")
        let json = AuditRecord(record, mode: .replay).jsonLine()
        for key in ["period_share", "period_counted_s", "budget_left", "aim"] {
          #expect(json.contains("\"\(key)\":"), "\(json)")
        }
        #expect((record.slo?.objectives.first?.budget?.left ?? 0) < 0)
      }
      return counts + [after]
    }
    let plain = try afterExcursion(budget: false)
    let budgeted = try afterExcursion(budget: true)
    // Without a budget, the pool comes down within five minutes; with an overspent one, it holds
    // at five, and comes down once ten minutes have passed.
    #expect(budgeted[0] > plain[0], "\(budgeted) \(plain)")
    #expect(budgeted[1] < budgeted[0], "\(budgeted)")
  }

  @Test(
    "a missing share counts nothing, teaches the share missed by load nothing, holds no scale-down, and its record says so"
  )
  func missingShare() throws {
    var harness = EngineHarness(try budgetServer(budget: true), replicas: ["m": 4])
    for tick in 0..<200 {
      let rate = 4 + Double((tick / 20) % 8) * 2
      let b = rate * 5 / Double(harness.replicas["m"] ?? 1)
      harness.tick(
        at: Double(tick) * 15,
        ["rate": rate, "running": rate * 5, "waiting": 0, "ttft": 0.3 + 0.01 * b, "itl": 0.02 + 0.001 * b])
    }
    #expect(harness.state.targets["m"]?.slo?.budgets?["ttft"]?.requests == 0)
    // Nor is the share missed by load learned: the model sizes alone.
    #expect(harness.state.targets["m"]?.slo?.misses == nil)
    #expect(harness.events.allSatisfy { $0.slo?.byMisses == nil })
    let outage = try #require(harness.events(.signalMissing).first { $0.detail.contains("signal good") })
    #expect(
      outage.detail.hasSuffix("the error budget of m counts no requests until it returns"), "\(outage.detail)"
    )
    // The load falls away: the pool comes down though the share is missing.
    let before = harness.replicas["m"] ?? 0
    for tick in 200..<240 {
      let b = 5 / Double(harness.replicas["m"] ?? 1)
      harness.tick(
        at: Double(tick) * 15,
        ["rate": 1, "running": 5, "waiting": 0, "ttft": 0.3 + 0.01 * b, "itl": 0.02 + 0.001 * b])
    }
    #expect(before > 1 && (harness.replicas["m"] ?? 0) < before, "\(before) \(harness.replicas)")
  }

  @Test("within and period load, and bad ones are refused at their line")
  func config() throws {
    let policy = try budgetServer(budget: true)
    let slo = try #require(policy.targets.first?.slo)
    #expect(slo.objectives[0].within == "good" && slo.objectives[0].period == 86_400)
    #expect(slo.objectives[1].within == nil && slo.objectives[1].period == nil)
    #expect(slo.signalNames.contains("good"))
    #expect(
      slo.settings.contains("over a rolling 24h, its error budget counted from good"), "\(slo.settings)")
    for (objective, message) in [
      ("{latency: ttft, bound: 2s, measured: t, period: 24h}", "p.yaml:5:60: error: period needs within"),
      (
        "{latency: ttft, bound: 2s, measured: t, within: g, period: 30m}", "p.yaml:5:71: error: period is 30m"
      ),
      ("{latency: ttft, bound: 2s, measured: t, within: g, period: 500d}", "p.yaml:5:71: error:"),
      ("{latency: ttft, bound: 2s, measured: t, within: g, period: soon}", "p.yaml:5:71: error:"),
    ] {
      let text = refusal(
        """
        processes:
          m:
            scaling:
              max: 4
              slo: \(objective)
              load: r
              running: n
        """)
      #expect(text.contains(message), "\(text)")
    }
    let month = try loadPolicy(
      """
      processes:
        m:
          scaling:
            max: 4
            slo: {latency: ttft, bound: 2s, measured: t, within: g, period: 30d}
            load: r
            running: n
      """)
    let period = try #require(month.targets.first?.slo?.objectives.first?.period)
    #expect(period == 2_592_000, "\(period)")
    #expect(month.targets.first?.slo?.settings.contains("over a rolling 30d") == true)
  }
}
