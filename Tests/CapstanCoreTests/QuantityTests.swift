import Foundation
import Testing

@testable import CapstanCore

@Suite("Units")
struct QuantityTests {
  @Test(
    "durations",
    arguments: [
      ("300s", 300.0), ("10m", 600), ("1h", 3600), ("250ms", 0.25), ("1h30m", 5400), ("1.5m", 90), ("0s", 0),
    ])
  func durations(text: String, seconds: Double) throws {
    #expect(try Quantity.duration(text).get() == seconds)
  }

  @Test(
    "bad durations name the unit expected",
    arguments: [
      ("300", "has no unit"), ("5sec", "unit 'sec'"), ("soon", "is not a duration"), ("", "empty duration"),
      ("-5s", "is not a duration"),
    ])
  func badDurations(text: String, message: String) {
    guard case .failure(let failure) = Quantity.duration(text) else {
      Issue.record("'\(text)' parsed")
      return
    }
    #expect(failure.message.contains(message))
  }

  @Test(
    "thresholds normalise to seconds and percent points",
    arguments: [
      ("50", 50.0, Threshold.Unit.none), ("20%", 20, .percent), ("250ms", 0.25, .milliseconds),
      ("5s", 5, .seconds), ("2m", 120, .minutes), ("1h", 3600, .hours), ("0.5", 0.5, .none),
    ])
  func thresholds(text: String, value: Double, unit: Threshold.Unit) throws {
    #expect(try Quantity.threshold(text).get() == Threshold(value: value, unit: unit))
  }

  @Test("thresholds refuse other units", arguments: ["5sec", "10d", "5 GB", "%"])
  func badThresholds(text: String) {
    #expect(throws: QuantityError.self) { try Quantity.threshold(text).get() }
  }

  @Test(
    "memory sizes",
    arguments: [
      ("2Gi", 2_147_483_648.0), ("512Mi", 536_870_912), ("1G", 1e9), ("40Gi", 42_949_672_960), ("1024", 1024),
    ])
  func memory(text: String, bytes: Double) throws {
    #expect(try Quantity.memory(text).get() == bytes)
  }

  @Test("memory refuses unknown suffixes", arguments: ["2GB", "2 gigs", "Gi"])
  func badMemory(text: String) {
    #expect(throws: QuantityError.self) { try Quantity.memory(text).get() }
  }

  @Test("percent", arguments: [("70%", 70.0), ("0.5%", 0.5), ("100%", 100)])
  func percent(text: String, value: Double) throws {
    #expect(try Quantity.percent(text).get() == value)
  }

  @Test("counts refuse fractions and units", arguments: ["0.3", "-1", "2x", "three"])
  func badCounts(text: String) {
    #expect(throws: QuantityError.self) { try Quantity.count(text, what: "replicas").get() }
  }

  @Test("did you mean", arguments: [("intervl", "interval"), ("mx", "max"), ("resorces", "resources")])
  func suggestions(typo: String, expected: String) {
    #expect(
      closestMatch(to: typo, in: ["interval", "staleness", "max", "min", "resources", "scaling"]) == expected)
  }

  @Test("no suggestion when nothing is close")
  func noSuggestion() {
    #expect(closestMatch(to: "completely_different", in: ["max", "min"]) == nil)
  }
}
