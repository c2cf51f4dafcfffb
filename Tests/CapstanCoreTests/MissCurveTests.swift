import Foundation
import Testing

@testable import CapstanCore

@Suite("The share missed, measured by per-unit load")
struct MissCurveTests {
  @Test("requests and misses are counted by band of per-unit load, older ones forgotten")
  func counts() throws {
    var curve = MissCurve()
    // 400 requests at 2 a second a unit, 8 missed: not yet enough to use.
    curve.add(perUnit: 2, requests: 400, missed: 8)
    #expect(curve.missed(perUnit: 2) == nil)
    curve.add(perUnit: 2.05, requests: 400, missed: 8)
    // One band (2 and 2.05 are within a tenth), 800 requests counted, the first forgotten a little.
    #expect(curve.cells.count == 1)
    let share = try #require(curve.missed(perUnit: 2))
    #expect(abs(share - 0.02) < 1e-9, "\(share)")
    // A load above every band measured reads the nearest band below it; one below all, nothing.
    #expect(curve.missed(perUnit: 50) == share)
    #expect(curve.missed(perUnit: 1) == nil)
    // A band of its own once more load a unit is measured.
    curve.add(perUnit: 4, requests: 1000, missed: 100)
    #expect(abs((curve.missed(perUnit: 4.2) ?? 0) - 0.1) < 1e-9)
    #expect(abs((curve.missed(perUnit: 3) ?? 0) - 0.02) < 1e-9)
    #expect(curve.isSound)
  }

  @Test(
    "a not-a-number, negative, idle or out-of-range tick counts nothing; misses above requests count as requests"
  )
  func badInput() {
    var curve = MissCurve()
    for (perUnit, requests, missed) in [
      (Double.nan, 100.0, 1.0), (2, .nan, 1), (2, 100, .nan), (2, 100, -1), (-1, 100, 1), (0, 100, 1),
      (1e-9, 100, 1), (2e15, 100, 1), (2, 0, 0), (2, -5, 0), (.infinity, 100, 1),
    ] {
      curve.add(perUnit: perUnit, requests: requests, missed: missed)
    }
    #expect(curve.cells.isEmpty)
    curve.add(perUnit: 2, requests: 600, missed: 900)
    #expect(curve.missed(perUnit: 2) == 1)
    #expect(curve.isSound)
  }

  @Test("the fewest units that carry a load within the share aimed at, by bisection")
  func units() {
    var curve = MissCurve()
    // Measured: 1% missed at 1 a second a unit, 5% at 2, 20% at 4.
    curve.add(perUnit: 1, requests: 1000, missed: 10)
    curve.add(perUnit: 2, requests: 1000, missed: 50)
    curve.add(perUnit: 4, requests: 1000, missed: 200)
    // A load reads the band at or below it. 8 a second within 5%: 3 units of 2.67 (the band at
    // 2); within 1%: 5 units of 1.6 (the band at 1); within 20%, one unit rules nothing out.
    #expect(curve.units(load: 8, allowed: 0.05, limit: 100) == 3)
    #expect(curve.units(load: 8, allowed: 0.01, limit: 100) == 5)
    #expect(curve.units(load: 8, allowed: 0.2, limit: 100) == nil)
    // Never past the limit, and nothing for no load.
    #expect(curve.units(load: 8, allowed: 0.01, limit: 4) == 4)
    #expect(curve.units(load: 0, allowed: 0.01, limit: 100) == nil)
    // Within 0.1%, no band measured has met it: the misses are not the load's, and the curve
    // asks for nothing.
    #expect(curve.units(load: 8, allowed: 0.001, limit: 64) == nil)
    // Once one has, a load below every band measured is taken to meet it: 9 units of 0.89.
    curve.add(perUnit: 0.5, requests: 1000, missed: 0)
    #expect(curve.units(load: 8, allowed: 0.001, limit: 64) == 9)
  }

  @Test("the curve is kept in the saved state; a state saved without one loads, and a damaged one is refused")
  func saved() throws {
    var state = SLOState()
    var curve = MissCurve()
    curve.add(perUnit: 2, requests: 1000, missed: 10)
    curve.add(perUnit: 5, requests: 1000, missed: 100)
    state.misses = ["ttft": curve]
    let data = try JSONEncoder().encode(state)
    let loaded = try JSONDecoder().decode(SLOState.self, from: data)
    #expect(loaded == state && loaded.isSound)
    var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    object["misses"] = nil
    let older = try JSONDecoder().decode(SLOState.self, from: JSONSerialization.data(withJSONObject: object))
    #expect(older.misses == nil && older.isSound)
    for damaged in [
      #"{"cells": [{"band": 3, "requests": 10, "missed": 20}]}"#,
      #"{"cells": [{"band": 3, "requests": 10, "missed": 1}, {"band": 2, "requests": 10, "missed": 1}]}"#,
      #"{"cells": [{"band": 3, "requests": 0, "missed": 0}]}"#,
      #"{"cells": [{"band": 3, "requests": 1e300, "missed": 0}]}"#,
    ] {
      var broken = state
      broken.misses?["ttft"] = try JSONDecoder().decode(MissCurve.self, from: Data(damaged.utf8))
      #expect(!broken.isSound, "\(damaged)")
    }
  }

  /// A server whose first tokens miss their bound for a tenth of requests wherever a replica
  /// carries more than 3 a second, though latency and queueing models see room for more: the
  /// bursts that make them miss do not show in a tick's means.
  func bursty(ticks: Int, rate: (Int) -> Double, harness: inout EngineHarness) {
    for tick in 0..<ticks {
      let load = rate(tick)
      let replicas = Double(harness.replicas["m"] ?? 1)
      let b = load * 5 / replicas
      harness.tick(
        at: Double(tick) * 15,
        [
          "rate": load, "running": load * 5, "waiting": 0, "ttft": 0.3 + 0.01 * b, "itl": 0.02 + 0.001 * b,
          "good": load / replicas > 3 ? 0.9 : 1,
        ])
    }
  }

  @Test(
    "where the share missed at the model's count is above the aim, the pool keeps each replica's load where it was met"
  )
  func sizes() throws {
    let stepping: (Int) -> Double = { 4 + Double(($0 / 20) % 8) * 2 }
    var plain = EngineHarness(try budgetServer(budget: false), replicas: ["m": 4])
    bursty(ticks: 480, rate: stepping, harness: &plain)
    var measured = EngineHarness(try budgetServer(budget: true), replicas: ["m": 4])
    bursty(ticks: 480, rate: stepping, harness: &measured)
    // Two hours at 18 a second: the model alone runs replicas at more than 3 a second each.
    bursty(ticks: 240, rate: { _ in 18 }, harness: &plain)
    bursty(ticks: 240, rate: { _ in 18 }, harness: &measured)
    let model = try #require(plain.replicas["m"])
    let sized = try #require(measured.replicas["m"])
    #expect(18 / Double(model) > 3, "\(model)")
    #expect(sized >= 6, "\(model) \(sized)")
    let curve = try #require(measured.state.targets["m"]?.slo?.misses?["ttft"])
    // Where a replica carried 4 a second, a tenth missed; where it carried 2, none.
    #expect(abs((curve.missed(perUnit: 4) ?? 0) - 0.1) < 0.02, "\(curve.cells)")
    #expect(curve.missed(perUnit: 2) == 0, "\(curve.cells)")
    let record = try #require(measured.events.last { $0.slo?.byMisses != nil })
    let misses = try #require(record.slo?.byMisses)
    #expect(misses.missedWithFewer > misses.allowed && misses.units > misses.model)
    let fewer = misses.units - 1
    #expect(
      record.detail.contains(
        "; ttft missed \(hundredths(misses.missedWithFewer * 100))% of requests where a replica carried \(hundredths(misses.load / Double(fewer)))/s (\(hundredths(misses.load))/s smoothed on \(fewer)), above the \(hundredths(misses.allowed * 100))% aimed at, and "
      ), "\(record.detail)")
    let json = AuditRecord(record, mode: .replay).jsonLine()
    for key in ["\"misses\":{", "\"missed_with_fewer\":", "\"units\":\(misses.units)", "\"allowed\":"] {
      #expect(json.contains(key), "\(json)")
    }
  }
}
