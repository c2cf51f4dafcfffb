import Foundation
import Testing

@testable import CapstanCore

/// A measured percentile spans `measured_over`: just after a replica becomes ready it still
/// counts the time before that replica served, so a latency above its bound then is not, on
/// its own, a pool still short.
@Suite("The measured latency's correction while a new replica shows in it")
struct SLOCorrectionTests {
  static func signals(itl: Double) -> [String: Double] {
    ["rate": 1, "running": 5, "waiting": 0, "ttft": 0.4, "itl": itl]
  }

  @Test(
    "above its bound as a replica becomes ready: no replica more until the latency rises past where it was then"
  )
  func holdsUntilItRises() throws {
    var harness = EngineHarness(try sloServer(), replicas: ["m": 4])
    SLOEngineTests().learned(&harness, ticks: 160)
    #expect(harness.events.last { $0.slo != nil }?.slo?.mode == .model)
    let start = 160.0 * 15
    // Five replicas, one of them starting; then all ready with the ITL over the last minute
    // still at 60 ms, above its 50 ms bound.
    harness.replicas["m"] = 5
    harness.ready["m"] = 4
    harness.tick(at: start, Self.signals(itl: 0.06))
    harness.ready = [:]
    let before = harness.events.count
    harness.tick(at: start + 15, Self.signals(itl: 0.06))
    harness.tick(at: start + 30, Self.signals(itl: 0.055))
    #expect(harness.replicas["m"] == 5, "\(harness.events.suffix(2).map(\.detail))")
    // No replica more and none fewer: what the model asks for is held, and that is on record.
    let held = harness.events[before...]
    #expect(held.allSatisfy { $0.kind == .blocked && $0.reason == .slo }, "\(held.map(\.detail))")
    #expect(held.first?.detail.hasSuffix("no scale-down while itl 60ms is above its bound 50ms") == true)
    let learned = try #require(harness.state.targets["m"]?.slo)
    #expect(learned.readyAt == t0.addingTimeInterval(start + 15))
    #expect(learned.measuredAtReady == [0.4, 0.06])
    // Higher than when the replica became ready: the pool is short, so one more.
    harness.tick(at: start + 45, Self.signals(itl: 0.07))
    #expect(harness.replicas["m"] == 6)
    let up = try #require(harness.events.last)
    #expect(up.slo?.corrected == true && up.slo?.settling == false, "\(up.detail)")
  }

  @Test("once the span it is measured over has passed, a latency still above its bound adds one")
  func addsAfterTheSpan() throws {
    var harness = EngineHarness(try sloServer(), replicas: ["m": 4])
    SLOEngineTests().learned(&harness, ticks: 160)
    let start = 160.0 * 15
    harness.replicas["m"] = 5
    harness.ready["m"] = 4
    harness.tick(at: start, Self.signals(itl: 0.06))
    harness.ready = [:]
    for second in stride(from: 15.0, to: 75, by: 15) {
      harness.tick(at: start + second, Self.signals(itl: 0.06))
      #expect(harness.replicas["m"] == 5, "at \(second) s")
    }
    harness.tick(at: start + 75, Self.signals(itl: 0.06))
    #expect(harness.replicas["m"] == 6)
  }
}
