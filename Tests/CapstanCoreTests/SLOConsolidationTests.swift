import Foundation
import Testing

@testable import CapstanCore

@Suite("A scale-down checked against the busiest minute")
struct SLOConsolidationTests {
  @Test(
    "the most in flight is kept a minute at a time, for the span, and a clock that goes back starts again")
  func recentPeaks() throws {
    var peaks = RecentPeaks()
    for second in stride(from: 0.0, to: 60, by: 15) {
      peaks.add(second == 30 ? 40 : 10, at: t0.addingTimeInterval(second))
    }
    #expect(peaks.minutes.count == 1 && peaks.most(at: t0.addingTimeInterval(45)) == 40)
    // Each later minute its own; the busiest counts until the span has passed it.
    for minute in 1...9 { peaks.add(5, at: t0.addingTimeInterval(Double(minute) * 60)) }
    #expect(peaks.most(at: t0.addingTimeInterval(540)) == 40)
    for minute in 10...12 { peaks.add(5, at: t0.addingTimeInterval(Double(minute) * 60)) }
    #expect(peaks.minutes.count <= RecentPeaks.mostMinutes)
    #expect(peaks.most(at: t0.addingTimeInterval(720)) == 5)
    // Not-a-number and negative values count nothing; a clock that went back forgets.
    peaks.add(.nan, at: t0.addingTimeInterval(780))
    peaks.add(-3, at: t0.addingTimeInterval(780))
    #expect(peaks.most(at: t0.addingTimeInterval(780)) == 5)
    peaks.add(7, at: t0.addingTimeInterval(100))
    #expect(peaks.minutes.count == 1 && peaks.most(at: t0.addingTimeInterval(100)) == 7)
    #expect(peaks.isSound)
    var state = SLOState()
    state.peaks = peaks
    let loaded = try JSONDecoder().decode(SLOState.self, from: try JSONEncoder().encode(state))
    #expect(loaded == state && loaded.isSound)
    // A saved state whose peaks are out of range, or more than the span holds, is refused.
    var object = try #require(
      try JSONSerialization.jsonObject(with: try JSONEncoder().encode(state)) as? [String: Any])
    var saved = try #require(object["peaks"] as? [String: Any])
    var minutes = try #require(saved["minutes"] as? [[String: Any]])
    minutes[0]["most"] = -1
    saved["minutes"] = minutes
    object["peaks"] = saved
    let negative = try JSONDecoder().decode(
      SLOState.self, from: try JSONSerialization.data(withJSONObject: object))
    #expect(!negative.isSound)
    minutes[0]["most"] = 7
    saved["minutes"] = Array(repeating: minutes[0], count: RecentPeaks.mostMinutes + 1)
    object["peaks"] = saved
    let crowded = try JSONDecoder().decode(
      SLOState.self, from: try JSONSerialization.data(withJSONObject: object))
    #expect(!crowded.isSound)
  }

  /// A server learned as `SLOTests.learned` does, its TTFT's share within the bound measured
  /// (`good`) where `measured` is set; then a minute with 60 in flight on `onBurst` replicas,
  /// then a quiet load.
  func quietAfterBurst(measured: Bool, onBurst: Int = 5, min: Int = 1) throws -> EngineHarness {
    let text = sloServerText(ttft: measured ? ", within: good, period: 24h" : "")
      .replacingOccurrences(of: "min: 1", with: "min: \(min)")
    var harness = EngineHarness(try loadPolicy(text), replicas: ["m": 4])
    var tick = 0
    func feed(rate: Double, running: Double) {
      let b = running / Double(harness.replicas["m"] ?? 1)
      harness.tick(
        at: Double(tick) * 15,
        [
          "rate": rate, "running": running, "waiting": 0, "ttft": 0.3 + 0.01 * b, "itl": 0.02 + 0.001 * b,
          "good": 1,
        ])
      tick += 1
    }
    for step in 0..<160 {
      let rate = 4 + Double((step / 20) % 8) * 2
      feed(rate: rate, running: rate * 5)
    }
    // Ten quiet minutes, so the load's trend has come down; then five replicas.
    for _ in 0..<40 { feed(rate: 2, running: 10) }
    harness.replicas["m"] = onBurst
    // One minute at 12 a second, 60 in flight.
    for _ in 0..<4 { feed(rate: 12, running: 60) }
    // Then 20 minutes of 2 a second.
    for _ in 0..<80 { feed(rate: 2, running: 10) }
    return harness
  }

  @Test(
    "where an objective's misses are measured, no scale-down below what the busiest minute of the last 10 needs"
  )
  func holdsForThePeak() throws {
    let harness = try quietAfterBurst(measured: true)
    let burst = Double(200) * 15
    let downs = harness.events(.scaleDown).filter { $0.time.timeIntervalSince(t0) >= burst }
    // The quiet load needs one replica; the busiest minute, 60 in flight, needs 3 of about 29
    // (what the ITL's bound allows; TTFT's 2 s leaves no whole request's time for waiting).
    let held = try #require(downs.first)
    let peak = try #require(held.slo?.consolidation, "\(held.detail)")
    #expect(held.to == 3 && peak.peak == 60 && peak.replicas == 3, "\(held.detail)")
    #expect(abs(peak.room / 29 - 1) < 0.1, "\(peak)")
    #expect(
      held.detail.hasSuffix(
        "the busiest minute of the last 10 min had 60 in flight, room for \(hundredths(peak.room)) a replica: no fewer than 3"
      ),
      "\(held.detail)")
    #expect(AuditRecord(held, mode: .replay).jsonLine().contains(#""consolidation":{"peak":60,"#))
    // The TTFT's line does not size: its misses are measured.
    #expect(held.slo?.objectives.first { $0.latency == .ttft }?.capacity == nil)
    #expect(held.detail.contains("not sizing: its misses are measured"), "\(held.detail)")
    // Down to one once the burst has left the span, and not before.
    let last = try #require(downs.last)
    #expect(last.to == 1 && downs.count == 2, "\(downs.map(\.detail))")
    #expect(last.time.timeIntervalSince(t0) >= burst + 540, "\(last.time)")
    // The hold is a blocked record, written when it starts and once for each other count the
    // SLOs ask for while it holds, not each tick: they ask for 1, then 2, then 1 again, and two
    // records say so.
    let holds = harness.events(.blocked).filter {
      $0.time.timeIntervalSince(t0) >= burst && $0.reason == .slo
    }
    let hold = try #require(holds.first)
    #expect(hold.time == held.time && hold.to == 1, "\(holds.map(\.detail))")
    #expect(holds.map(\.to) == [1, 2], "\(holds.map(\.detail))")
    #expect(hold.detail.hasPrefix("wanted 1 by the SLOs, held at 3: "), "\(hold.detail)")
    #expect(hold.slo?.consolidation == peak)
  }

  @Test("a scale-down the busiest minute holds whole writes a blocked record with the arithmetic")
  func wholeHold() throws {
    // The burst's minute on the three replicas it needs: the quiet load after it asks for one,
    // and what holds the other two is on record before any of them is removed.
    let harness = try quietAfterBurst(measured: true, onBurst: 3)
    let burst = Double(200) * 15
    let after = harness.events.filter { $0.time.timeIntervalSince(t0) >= burst }
    let holds = after.filter { $0.kind == .blocked && $0.reason == .slo }
    let hold = try #require(holds.first, "\(after.map(\.detail))")
    #expect(hold.from == 3 && hold.to == 1, "\(holds.map(\.detail))")
    #expect(holds.map(\.to) == [1, 2], "\(holds.map(\.detail))")
    #expect(after.filter { $0.kind == .scaleDown }.allSatisfy { $0.time > hold.time })
    let peak = try #require(hold.slo?.consolidation)
    #expect(peak.replicas == 3 && peak.peak == 60)
    #expect(
      hold.detail.hasPrefix("wanted 1 by the SLOs, held at 3: ")
        && hold.detail.hasSuffix("no fewer than 3"), "\(hold.detail)")
    let line = AuditRecord(hold, mode: .replay).jsonLine()
    #expect(line.contains(#""event":"blocked""#) && line.contains(#""reason":"slo""#), "\(line)")
  }

  @Test("a hold above min is recorded from min up; a hold at min writes nothing")
  func holdAtMin() throws {
    let burst = Double(200) * 15
    func holds(min: Int) throws -> [AuditEvent] {
      try quietAfterBurst(measured: true, onBurst: 3, min: min).events.filter {
        $0.time.timeIntervalSince(t0) >= burst && $0.kind == .blocked && $0.reason == .slo
      }
    }
    let aboveMin = try holds(min: 2)
    #expect(!aboveMin.isEmpty && aboveMin.allSatisfy { $0.to == 2 }, "\(aboveMin.map(\.detail))")
    #expect(aboveMin.first?.detail.hasPrefix("wanted 2 by the SLOs, held at 3: ") == true)
    #expect(try holds(min: 3).isEmpty)
  }

  @Test("without a measured share, the queueing estimate sizes and no minute holds a scale-down")
  func modelOnly() throws {
    let harness = try quietAfterBurst(measured: false)
    #expect(!harness.events.contains { $0.slo?.consolidation != nil })
    let downs = harness.events(.scaleDown).filter { $0.time.timeIntervalSince(t0) >= Double(200) * 15 }
    #expect(
      downs.first?.to == 1
        && downs.first.map { $0.time.timeIntervalSince(t0) < Double(200) * 15 + 540 } == true)
  }
}
