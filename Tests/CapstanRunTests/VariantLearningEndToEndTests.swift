import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Variants that learn their capacity, live: a fast and a slow variant of the vLLM-like
/// stand-in, one replica each, scraped by a real Prometheus, each read through its own queries
/// (the ready-made policy's, narrowed to the variant's instances).
extension SLOEndToEndTests {
  /// The ready-made policy's signals, and a copy of each for every variant, named
  /// `VARIANT_SIGNAL` and narrowed to the variant's ports.
  static func learningPolicy(prometheus: String, base: Int, live: Live) throws -> String {
    let signals = try readyMadeSignals(prometheus: prometheus)
    let model = #"model_name="meta-llama/Llama-3.1-8B-Instruct""#
    guard signals.contains(model) else { throw CocoaError(.fileReadCorruptFile) }
    let names = try NSRegularExpression(pattern: "^  ([a-z0-9_]+):$", options: .anchorsMatchLines)
    func copy(for variant: String, port: Int) -> String {
      let renamed = names.stringByReplacingMatches(
        in: signals, range: NSRange(signals.startIndex..., in: signals), withTemplate: "  \(variant)_$1:")
      return renamed.replacingOccurrences(of: model, with: #"\#(model),instance="127.0.0.1:\#(port)""#)
    }
    func command(_ base: Double, _ perRequest: Double) -> String {
      standInCommand(itlBase: base, perRequest: perRequest, live: live)
    }
    func learn(_ variant: String) -> String {
      "{load: \(variant)_request_rate, running: \(variant)_requests_running, measured: {ttft: \(variant)_ttft_p99, itl: \(variant)_itl_p99}}"
    }
    return """
      controller:
        interval: 1s
      signals:
      \(signals)\(copy(for: "fast", port: base))\(copy(for: "slow", port: base + 1))
      \(variantProcess)
          variants:
            fast:
              cost_per_hour_usd: 4.10
              capacity: 1
              min: 1
              max: 1
              learn: \(learn("fast"))
              local: {command: ["sh", "-c", "exec \(command(0.006, 0.004))"], port_base: \(base), ready_path: /health}
            slow:
              cost_per_hour_usd: 1.20
              capacity: 1
              min: 1
              max: 1
              learn: \(learn("slow"))
              local: {command: ["sh", "-c", "exec \(command(0.012, 0.008))"], port_base: \(base + 1), ready_path: /health}
      """
  }

  @Test(
    "a slow variant declared as much capacity as a fast one learns less from its own signals, kept in the saved state"
  )
  func variantLearnsCapacity() async throws {
    let (live, base, prometheus) = try await Self.start("slo-variant-learning-live", replicas: 2)
    defer { prometheus.stop() }
    let policy = try Self.learningPolicy(prometheus: prometheus.url, base: base, live: live)
    try Data(policy.utf8).write(to: live.policy)
    let validate = try runCapstan(["validate", live.policy.path])
    #expect(validate.status == 0, "\(validate.stderr)\n\(policy)")

    let state = live.folder.appendingPathComponent("state")
    let capstan = try RunningCapstan(policy: live.policy, stateDirectory: state)
    /// The slow variant's learned capacity in the saved state; nil while it holds the declared.
    func learned() -> Double? {
      guard let data = try? Data(contentsOf: state.appendingPathComponent("state.json")),
        let saved = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
        let engine = saved["engine"] as? [String: Any], let targets = engine["targets"] as? [String: Any],
        let slow = targets["vllm.slow"] as? [String: Any]
      else { return nil }
      return slow["learnedCapacity"] as? Double
    }
    #expect(await eventually(timeout: 30) { registered(live) == 2 })

    // A step time twice the fast one's: at each load the slow replica runs more at once, and
    // its inter-token latency reaches the bound at under half the fast one's concurrency.
    let load = try live.startLoad(rate: "3")
    defer { if load.isRunning { load.terminate() } }
    for rate in ["6", "10", "4"] {
      try await Task.sleep(nanoseconds: 20_000_000_000)
      try live.setRate(rate)
    }
    #expect(await eventually(timeout: 60) { learned() != nil })
    let capacity = try #require(learned(), "\(capstan.auditRecords().map { $0["detail"] ?? "" })")
    // Nearer the half of a fast replica (or less) it serves than the whole one declared.
    #expect(capacity < 0.75, "\(capacity)")
    // /metrics reports the capacity in use: the fast variant's declared unit, the slow one's
    // learned (or a later one learned since).
    #expect(await capstan.metric(#"capstan_variant_capacity{process="vllm.fast"}"#) == 1)
    let reported = try #require(await capstan.metric(#"capstan_variant_capacity{process="vllm.slow"}"#))
    #expect(reported < 0.75, "\(reported)")
    #expect(registered(live) == 2)

    try live.setRate("stop")
    #expect(await eventually(timeout: 90) { !load.isRunning })
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit(timeout: 60) == 0)
    #expect(registered(live) == 0)
    try? FileManager.default.removeItem(at: live.folder)
  }
}
