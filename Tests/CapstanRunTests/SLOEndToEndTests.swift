import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `policies/vllm-slo.yaml` under `capstan run`, live: local replicas of a vLLM-like stand-in
/// (Tests/Peers/vllm-standin.py: vLLM's metric names and histogram buckets, a step time of
/// 10 ms + 5 ms a running request, which spans the ITL buckets either side of 25 ms), scraped
/// every second by a real Prometheus, under open-loop load from
/// Tests/Peers/load-generator.py. The policy is the ready-made file with its time scale
/// shortened (1 s ticks, 10 s query ranges, a 3 s startup, a 10 s scale-down window) and its
/// command, address and ports pointed here.
///
/// The pool must hold the SLO's share once it has settled at each load, by the stand-ins' own
/// record of every request, and come back down when the load falls. Waits end on events (an
/// audit record, a quiet spell), so a slow machine takes longer and asserts the same things.
@Suite("An SLO-sized vLLM pool under capstan run", .serialized)
struct SLOEndToEndTests {
  static let standIn = repositoryRoot.appendingPathComponent("Tests/Peers/vllm-standin.py")
  static let generator = repositoryRoot.appendingPathComponent("Tests/Peers/load-generator.py")
  static let maxReplicas = 4

  struct Live {
    let folder: URL
    var registry: URL { folder.appendingPathComponent("registry") }
    var served: URL { folder.appendingPathComponent("served.jsonl") }
    var sent: URL { folder.appendingPathComponent("sent.jsonl") }
    var rateFile: URL { folder.appendingPathComponent("rate") }
    var policy: URL { folder.appendingPathComponent("policy.yaml") }

    /// Sets the generator's rate by renaming a whole file onto the one it reads.
    func setRate(_ text: String) throws {
      let next = folder.appendingPathComponent("rate.next")
      try Data(text.utf8).write(to: next)
      guard rename(next.path, rateFile.path) == 0 else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: rateFile.path])
      }
    }

    /// Starts the load generator at `rate` requests a second, 20 tokens each, to the stand-ins
    /// in the registry.
    func startLoad(rate: String) throws -> Process {
      try setRate(rate)
      let load = Process()
      load.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      load.arguments = [
        "python3", SLOEndToEndTests.generator.path, "--registry", registry.path, "--records", sent.path,
        "--rate-file", rateFile.path, "--tokens", "20",
      ]
      load.standardOutput = FileHandle.nullDevice
      try load.run()
      return load
    }

    func lines(_ file: URL) -> [[String: Any]] {
      guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
      return text.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }
    }

    /// Requests the stand-ins served that arrived in `window` (Unix seconds).
    func served(arrivingIn window: ClosedRange<Double>) -> [[String: Any]] {
      lines(served).filter { window.contains(($0["arrival"] as? Double) ?? -1) }
    }
  }

  /// A scratch folder named `name` with its registry, `replicas` free ports from `base`, and a
  /// Prometheus scraping them, ready; the caller stops it.
  static func start(_ name: String, replicas: Int) async throws -> (
    live: Live, base: Int, prometheus: PrometheusServer
  ) {
    let live = Live(folder: try scratchDirectory(name))
    try FileManager.default.createDirectory(at: live.registry, withIntermediateDirectories: true)
    let base = try freePortRun(replicas)
    let prometheus = try PrometheusServer(targets: (0..<replicas).map { "127.0.0.1:\(base + $0)" })
    #expect(await prometheus.ready())
    return (live, base, prometheus)
  }

  /// `count` consecutive ports with nothing listening: one a replica.
  static func freePortRun(_ count: Int) throws -> Int {
    // Below Linux's ephemeral range (32768 up): a port there may be the local end of a
    // scrape's or a request's connection, and a stand-in that binds it exits.
    for _ in 0..<50 {
      let base = Int.random(in: 20_000..<(32_000 - count))
      if (0..<count).allSatisfy({ !acceptsConnections(port: base + $0) }) { return base }
    }
    throw CocoaError(.featureUnsupported)
  }

  /// The ready-made policy, with each change checked to have found its text.
  static func policy(prometheus: String, base: Int, live: Live) throws -> String {
    var text = try String(
      contentsOf: repositoryRoot.appendingPathComponent("policies/vllm-slo.yaml"), encoding: .utf8)
    let command =
      "python3 \(standIn.path) meta-llama/Llama-3.1-8B-Instruct --port \"$PORT\" --startup 3 --itl-base 0.01 --itl-per-request 0.005 --registry \(live.registry.path) --records \(live.served.path)"
    let changes: [(String, String)] = [
      ("url: http://127.0.0.1:9090", "url: \(prometheus)"),
      ("interval: 15s", "interval: 1s"),
      ("[1m]", "[10s]"),
      ("startup: 2m", "startup: 3s"),
      ("max: 8", "max: \(maxReplicas)"),
      ("measured_over: 1m", "measured_over: 10s"),
      ("vllm serve meta-llama/Llama-3.1-8B-Instruct --port \"$PORT\"", command),
      ("port_base: 8000", "port_base: \(base)"),
      ("    scale_down:\n", "    scale_down:\n      stabilization_window: 10s\n"),
      ("drain_timeout: 120s", "drain_timeout: 30s"),
    ]
    for (old, new) in changes {
      #expect(text.contains(old), "policies/vllm-slo.yaml no longer has '\(old)'")
      text = text.replacingOccurrences(of: old, with: new)
    }
    return text
  }

  /// The share of served requests whose first token came within 2 s, and of all their gaps
  /// between tokens that were within 50 ms: the policy's two objectives, from the stand-ins'
  /// own records.
  static func shares(_ requests: [[String: Any]]) -> (ttft: Double, itl: Double) {
    let ttft = requests.compactMap { $0["ttft_s"] as? Double }
    let gaps = requests.flatMap { ($0["itl_s"] as? [Double]) ?? [] }
    func share(_ values: [Double], within bound: Double) -> Double {
      values.isEmpty ? 0 : Double(values.filter { $0 <= bound }.count) / Double(values.count)
    }
    return (share(ttft, within: 2), share(gaps, within: 0.05))
  }

  @Test(
    "as the load steps up the pool grows until the SLO holds, and when it falls the pool comes back to one replica"
  )
  func loadStepsUpAndDown() async throws {
    let (live, base, prometheus) = try await Self.start("slo-live", replicas: Self.maxReplicas)
    defer { prometheus.stop() }
    try Data(try Self.policy(prometheus: prometheus.url, base: base, live: live).utf8).write(to: live.policy)

    let capstan = try RunningCapstan(
      policy: live.policy, stateDirectory: live.folder.appendingPathComponent("state"))
    // The pool's own decisions: not the start of its min.
    func vllmRecords(_ event: String) -> [[String: Any]] {
      capstan.records(event: event).filter {
        $0["process"] as? String == "vllm" && $0["reason"] as? String != "min_instances"
      }
    }
    // min 1: one replica starts, and registers once it has "loaded".
    #expect(await eventually(timeout: 30) { registered(live) == 1 })

    let load = try live.startLoad(rate: "2")
    defer { if load.isRunning { load.terminate() } }

    // Light load: one replica holds it, and the latency models learn from it.
    try await Task.sleep(nanoseconds: 30_000_000_000)
    #expect(vllmRecords("scale_up").isEmpty)

    // Five times the load: more than one replica can serve within 50 ms a token.
    try live.setRate("10")
    #expect(await eventually(timeout: 60) { !vllmRecords("scale_up").isEmpty })
    // Settled: no scale record for 20 s (each startup is 3 s, each query range 10 s).
    #expect(await eventually(timeout: 120) { quietFor(20, capstan: capstan) })
    let busy = vllmRecords("scale_up").compactMap { $0["to"] as? Int }.max() ?? 0
    #expect(busy >= 2)
    let settledAt = Date().timeIntervalSince1970
    try await Task.sleep(nanoseconds: 30_000_000_000)
    let heavy = live.served(arrivingIn: settledAt...Date().timeIntervalSince1970)
    let heavyShares = Self.shares(heavy)
    #expect(heavy.count >= 200, "\(heavy.count) requests served in 30 s at 10 a second")
    #expect(heavyShares.ttft >= 0.99 && heavyShares.itl >= 0.99, "shares at 10 a second: \(heavyShares)")

    // Back to light load: the pool comes back down to its min.
    try live.setRate("1")
    #expect(
      await eventually(timeout: 120) {
        vllmRecords("scale_down").last?["to"] as? Int == 1 && registered(live) == 1
      })
    let downAt = Date().timeIntervalSince1970
    try await Task.sleep(nanoseconds: 10_000_000_000)
    let light = live.served(arrivingIn: downAt...Date().timeIntervalSince1970)
    let lightShares = Self.shares(light)
    #expect(light.count >= 5)
    #expect(lightShares.ttft >= 0.99 && lightShares.itl >= 0.99, "shares at 1 a second: \(lightShares)")

    try live.setRate("stop")
    #expect(await eventually(timeout: 90) { !load.isRunning })
    #expect(load.terminationStatus == 0, "the load generator saw a request fail or go unanswered")

    // Every decision on the pool says how it was sized.
    let decisions = vllmRecords("scale_up") + vllmRecords("scale_down")
    #expect(decisions.allSatisfy { ($0["slo"] as? [String: Any])?["mode"] != nil })
    #expect(decisions.allSatisfy { ["slo", "model_not_ready"].contains($0["reason"] as? String) })
    // The ITL budget's share, as the ready-made query reads it from Prometheus: within 0 and 1,
    // and under 1 once gaps went over 50 ms at five times the load.
    let shares = decisions.compactMap { ($0["signals"] as? [String: Any])?["itl_within"] as? Double }
    #expect(!shares.isEmpty && shares.allSatisfy { (0...1).contains($0) }, "\(shares)")
    #expect(shares.contains { $0 < 1 }, "\(shares)")

    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit(timeout: 60) == 0)
    #expect(registered(live) == 0)
    try? FileManager.default.removeItem(at: live.folder)
  }

  /// The ready-made policy's signal entries (the lines under `signals:`), pointed at
  /// `prometheus`, their query ranges shortened to 10 s.
  static func readyMadeSignals(prometheus: String) throws -> String {
    let readyMade = try String(
      contentsOf: repositoryRoot.appendingPathComponent("policies/vllm-slo.yaml"), encoding: .utf8)
    guard let start = readyMade.range(of: "signals:\n"), let end = readyMade.range(of: "gpu_pools:") else {
      throw CocoaError(.fileReadCorruptFile)
    }
    return String(readyMade[start.upperBound..<end.lowerBound])
      .replacingOccurrences(of: "url: http://127.0.0.1:9090", with: "url: \(prometheus)")
      .replacingOccurrences(of: "[1m]", with: "[10s]")
  }

  /// A stand-in's command for a variant's `local.command`: a step time of `itlBase` and
  /// `perRequest` more for each request it runs.
  static func standInCommand(itlBase: Double, perRequest: Double, live: Live) -> String {
    "python3 \(standIn.path) meta-llama/Llama-3.1-8B-Instruct --port \\\"$PORT\\\" --startup 3 --itl-base \(itlBase) --itl-per-request \(perRequest) --registry \(live.registry.path) --records \(live.served.path)"
  }

  /// The live variant tests' process, down to `variants:`: TTFT and ITL objectives on the
  /// ready-made signals, 1 to 4 units, latencies measured over 10 s.
  static let variantProcess = """
    processes:
      vllm:
        startup: 3s
        scaling:
          min: 1
          max: 4
          slo:
            - {latency: ttft, percentile: 99, bound: 2s, measured: ttft_p99}
            - {latency: itl, percentile: 99, bound: 50ms, measured: itl_p99}
          load: request_rate
          running: requests_running
          waiting: requests_waiting
          measured_over: 10s
    """

  /// The ready-made policy's signals (each query range 10 s), and one process on two variants of
  /// the stand-in: `slow` (an L4-like replica, half a unit at $1.20: 12 ms + 8 ms a running
  /// request a token, so 4 at once within 50 ms) on ports `base` to `base + 2`, and `fast` (an
  /// H100-like one, a unit at $4.10: 6 ms + 4 ms, 11 at once) on `base + 3` and `base + 4`; min
  /// 1 unit, which is two slow ones. One request on a slow replica is under half the ITL bound,
  /// so the band rule, before the models are ready, removes capacity at light load too.
  static func variantPolicy(prometheus: String, base: Int, live: Live) throws -> String {
    let signals = try readyMadeSignals(prometheus: prometheus)
    func command(_ base: Double, _ perRequest: Double) -> String {
      standInCommand(itlBase: base, perRequest: perRequest, live: live)
    }
    return """
      controller:
        interval: 1s
      signals:
      \(signals)
      \(variantProcess)
          variants:
            slow:
              cost_per_hour_usd: 1.20
              capacity: 0.5
              max: 3
              local: {command: ["sh", "-c", "exec \(command(0.012, 0.008))"], port_base: \(base), ready_path: /health}
            fast:
              cost_per_hour_usd: 4.10
              capacity: 1
              max: 2
              local: {command: ["sh", "-c", "exec \(command(0.006, 0.004))"], port_base: \(base + 3), ready_path: /health}
      autoscaling:
        vllm:
          scale_down:
            stabilization_window: 10s
            action: {drain_timeout: 30s}
      """
  }

  @Test(
    "on two variants, the SLO's capacity fills the slow cheap one first, the fast dear one past its max, gives the fast one up first, and ends on slow ones"
  )
  func variantsFillCheapFirst() async throws {
    let (live, base, prometheus) = try await Self.start("slo-variants-live", replicas: 5)
    defer { prometheus.stop() }
    try Data(try Self.variantPolicy(prometheus: prometheus.url, base: base, live: live).utf8).write(
      to: live.policy)

    let capstan = try RunningCapstan(
      policy: live.policy, stateDirectory: live.folder.appendingPathComponent("state"))
    func moves() -> [[String: Any]] {
      capstan.auditRecords().filter {
        ["scale_up", "scale_down"].contains($0["event"] as? String)
          && $0["reason"] as? String != "min_instances"
      }
    }
    func summary() -> String {
      moves().map { "\($0["process"] ?? "") \($0["from"] ?? "") -> \($0["to"] ?? "")" }.joined(
        separator: ", ")
    }
    // min 1 unit: two slow replicas.
    #expect(await eventually(timeout: 30) { registered(live) == 2 })

    let load = try live.startLoad(rate: "2")
    defer { if load.isRunning { load.terminate() } }
    // Light load at two rates, so the latency models learn over a range of concurrency.
    try await Task.sleep(nanoseconds: 25_000_000_000)
    try live.setRate("4")
    try await Task.sleep(nanoseconds: 25_000_000_000)

    // More than three slow replicas serve within 50 ms a token.
    try live.setRate("14")
    #expect(await eventually(timeout: 90) { moves().contains { $0["process"] as? String == "vllm.fast" } })
    #expect(await eventually(timeout: 120) { quietFor(20, capstan: capstan) })
    let ups = moves().filter { $0["event"] as? String == "scale_up" }
    #expect(ups.first?["process"] as? String == "vllm.slow", "\(summary())")
    // The first fast replica starts with the slow ones at their max, in its decision's mix.
    let firstFast = (ups.first { $0["process"] as? String == "vllm.fast" }?["detail"] as? String) ?? ""
    #expect(firstFast.contains("slow 3 (") || firstFast.contains("slow 2 -> 3 ("), "\(firstFast)")

    // Back to light load: the fast replicas go first, and the pool comes back to its min.
    try live.setRate("1")
    #expect(await eventually(timeout: 150) { registered(live) == 2 && quietFor(15, capstan: capstan) })
    // Down: the fast, dearer per unit, goes first; a slow replica goes where the capacity left
    // covers what is wanted and a fast one's whole unit would not. The min's unit is left on
    // slow replicas alone.
    let downs = moves().filter { $0["event"] as? String == "scale_down" }
    #expect(downs.first?["process"] as? String == "vllm.fast", "\(summary())")
    let last = { (variant: String) in downs.last { $0["process"] as? String == variant }?["to"] as? Int }
    #expect(last("vllm.fast") == 0 && last("vllm.slow") == 2, "\(summary())")

    try live.setRate("stop")
    #expect(await eventually(timeout: 90) { !load.isRunning })
    #expect(load.terminationStatus == 0, "the load generator saw a request fail or go unanswered")
    // Every move of a variant carries the process's SLO sizing.
    #expect(moves().allSatisfy { ($0["slo"] as? [String: Any])?["mode"] != nil }, "\(summary())")

    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit(timeout: 60) == 0)
    #expect(registered(live) == 0)
    try? FileManager.default.removeItem(at: live.folder)
  }

  /// Stand-ins listening and taking requests.
  func registered(_ live: Live) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: live.registry.path)) ?? []).filter {
      Int($0) != nil
    }.count
  }

  /// Whether the last scale record is at least `seconds` old (or there is none).
  func quietFor(_ seconds: TimeInterval, capstan: RunningCapstan) -> Bool {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let last = capstan.auditRecords().filter {
      ["scale_up", "scale_down"].contains($0["event"] as? String)
    }.last
    guard let stamp = last?["time"] as? String else { return true }
    guard let date = formatter.date(from: stamp) ?? ISO8601DateFormatter().date(from: stamp) else {
      return false
    }
    return Date().timeIntervalSince(date) >= seconds
  }
}
