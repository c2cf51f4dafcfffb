import Foundation
import Testing

@testable import CapstanCore

/// Numbers that used to stop the process or disable a rule: each is refused at its position.
@Suite("Hostile numbers")
struct HostileNumberTests {
  struct Case: CustomTestStringConvertible, Sendable {
    var yaml: String
    var line: Int
    var message: String
    var testDescription: String { yaml.split(separator: "\n").last.map(String.init) ?? yaml }
  }

  static let base = "processes:\n  w:\n"

  static let cases: [Case] = [
    Case(
      yaml: "providers:\n  o: {tokens_per_minute: 1e308}\n" + base
        + "    scaling: {metric: q, target: 10, min: 1, max: 4}\n"
        + "    rate_limit: {provider: o, tokens_per_minute_per_replica: 1000}\n",
      line: 2, message: "out of range"),
    Case(
      yaml: base + "    scaling: {metric: q, target: 1e-300, min: 1, max: 4}\n", line: 3,
      message: "at least 0.000001"),
    Case(yaml: base + "    scaling: {metric: q, target: inf, min: 1, max: 4}\n", line: 3, message: "target"),
    Case(
      yaml: base + "    scaling: {metric: q, target: 10, min: 1, max: 9223372036854775807}\n", line: 3,
      message: "out of range"),
    Case(
      yaml: "controller: {interval: 9999999999999999999h}\n" + base
        + "    scaling: {metric: q, target: 10, min: 1, max: 4}\n",
      line: 1, message: "longer than a week"),
    Case(
      yaml: base + "    scaling: {metric: q, target: 10, min: 1, max: 4}\nautoscaling:\n  w:\n"
        + "    scale_down: {stabilization_window: 1h30m30m}\n",
      line: 6, message: "twice"),
    Case(
      yaml: base + "    scaling: {metric: q, target: 10, min: 1, max: 4}\nautoscaling:\n  w:\n"
        + "    scale_up: {conditions: [{metric: q > nan}]}\n",
      line: 6, message: "not a threshold"),
    Case(
      yaml: base + "    scaling: {metric: q, target: 10, min: 1, max: 4}\nautoscaling:\n  w:\n"
        + "    scale_up: {conditions: [{metric: q > 1e309}]}\n",
      line: 6, message: "not a threshold"),
    Case(
      yaml: base + "    scaling: {metric: q, target: 10, min: 1, max: 4}\nautoscaling:\n  w:\n"
        + "    scale_up: {action: {add_instances: 9223372036854775807}}\n",
      line: 6, message: "out of range"),
    Case(
      yaml: base + "    cost_per_hour_usd: 1e308\n    scaling: {metric: q, target: 10, min: 1, max: 4}\n",
      line: 3, message: "out of range"),
  ]

  @Test("refused at their line, with what was wrong", arguments: cases)
  func refused(_ item: Case) {
    #expect {
      try PolicyLoader.load(yaml: item.yaml, file: "p.yaml")
    } throws: { error in
      let text = "\(error)"
      return text.contains("p.yaml:\(item.line):") && text.contains(item.message)
    }
  }

  @Test("the engine saturates instead of trapping on extreme but valid inputs")
  func engineSaturates() throws {
    let policy = try loadPolicy(
      """
      processes:
        w:
          cost_per_hour_usd: 0.000001
          scaling: {metric: q, target: 0.000001, min: 1, max: 1000000}
      autoscaling:
        w: {scale_up: {constraints: [{max_cost_per_hour_usd: 1000000000000000}]}}
      """)
    var harness = EngineHarness(policy, replicas: ["w": 1])
    harness.tick(at: 0, ["q": 1e15])
    #expect(harness.replicas["w"] == 1_000_000)
  }
}

/// Inputs the fuzzers found that stopped the process, kept so they never do again.
@Suite("Fuzzer findings")
struct FuzzerFindingTests {
  static let folder = fixturesURL().appendingPathComponent("fuzz")
  static let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()

  @Test("each is answered with diagnostics, not a crash", arguments: files)
  func answered(file: String) throws {
    let data = try Data(contentsOf: Self.folder.appendingPathComponent(file))
    #expect(throws: PolicyLoadError.self) { try PolicyLoader.load(data: data, file: file) }
  }

  @Test("the folder is not empty") func present() { #expect(!Self.files.isEmpty) }
}
