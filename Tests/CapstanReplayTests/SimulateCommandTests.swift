import CapstanTestKit
import Foundation
import Testing

/// `capstan simulate`, the real binary, on the shipped examples.
@Suite("capstan simulate, end to end")
struct SimulateCommandTests {
  static let jobs = [
    "simulate", "examples/simulate/jobs.yaml", "--trace", "examples/simulate/jobs-burst.csv",
  ]

  @Test("the jobs example: a timeline and a table; JSON with the documented keys; the same bytes twice")
  func jobsExample() throws {
    let text = try runCapstan(Self.jobs)
    #expect(text.status == 0, "\(text.stderr)")
    #expect(text.stdout.hasPrefix("Timeline\n"))
    #expect(text.stdout.contains("worker: SLO queue_wait <= 120s for 95% of requests"))
    #expect(text.stdout.contains("0 of 2299"))

    let json = try runCapstan(Self.jobs + ["--format", "json"])
    #expect(json.status == 0)
    let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
    let process = try #require((object?["processes"] as? [[String: Any]])?.first)
    #expect(process["name"] as? String == "worker")
    let slo = try #require(process["slo"] as? [String: Any])
    #expect(slo["latency"] as? String == "queue_wait" && slo["bound_seconds"] as? Double == 120)
    let run = try #require((process["runs"] as? [[String: Any]])?.first)
    for key in [
      "run", "requests", "failed", "replica_hours", "cost_usd", "slo_attainment", "slo_miss_minutes",
      "latency_seconds", "scale_actions", "reversals", "peak_replicas",
    ] {
      #expect(run[key] != nil, "missing \(key)")
    }
    #expect(run["requests"] as? Int == 2299)
    #expect(try runCapstan(Self.jobs + ["--format", "json"]).stdout == json.stdout)
  }

  @Test(
    "--compare runs the oracle, the static pool, the zero-wait schedule, the HPA and KEDA beside the policy, each scored against the oracle"
  )
  func compare() throws {
    let result = try runCapstan(
      Self.jobs + ["--compare", "oracle,static,zero-wait,hpa,keda", "--format", "json"])
    #expect(result.status == 0, "\(result.stderr)")
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    #expect(object?["start"] as? String == "oracle")
    let runs = try #require((object?["processes"] as? [[String: Any]])?.first?["runs"] as? [[String: Any]])
    #expect(runs.map { $0["run"] as? String } == ["policy", "oracle", "static", "zero-wait", "hpa", "keda"])
    #expect(runs[1]["replica_hours_vs_oracle"] as? Double == 1)
    #expect(runs.allSatisfy { $0["requests"] as? Int == 2299 })
    // The oracle meets the SLO (95%) and costs no more than the other schedules that know the trace.
    let hours = runs.map { $0["replica_hours"] as? Double ?? 0 }
    #expect((runs[1]["slo_attainment"] as? Double ?? 0) >= 0.95)
    #expect(hours[1] <= hours[2] && hours[1] <= hours[3])
    // Goodput per replica-hour is the requests inside the SLO over the replica-hours.
    let goodput = try #require(runs[0]["goodput_per_replica_hour"] as? Double)
    let attainment = try #require(runs[0]["slo_attainment"] as? Double)
    #expect(abs(goodput - attainment * 2299 / hours[0]) < 0.5)
    #expect(runs.allSatisfy { ($0["average_replicas"] as? Double ?? 0) > 0 })
    let refused = try runCapstan(Self.jobs + ["--compare", "vpa"])
    #expect(
      refused.status != 0 && refused.stderr.contains("choose from oracle, static, zero-wait, hpa, keda"))
  }

  @Test("--audit-log writes the simulated decisions, mode simulate")
  func auditLog() throws {
    let log = temporaryFile("sim.jsonl")
    defer { try? FileManager.default.removeItem(at: log) }
    #expect(try runCapstan(Self.jobs + ["--audit-log", log.path]).status == 0)
    let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
    #expect(lines.count > 10)
    #expect(lines.allSatisfy { $0.contains(#""mode":"simulate""#) })
  }

  @Test("a predictive floor with a history source: a note that the simulation learns from its own run")
  func predictiveHistoryNote() throws {
    let policy = temporaryFile("jobs-predictive.yaml")
    let jobs = try String(contentsOfFile: "examples/simulate/jobs.yaml", encoding: .utf8)
    try jobs.replacingOccurrences(
      of: "    simulation:\n",
      with: "    predictive: {per_replica: 4, history: {file: recorded.csv}}\n    simulation:\n"
    ).write(to: policy, atomically: true, encoding: .utf8)
    let result = try runCapstan([
      "simulate", policy.path, "--trace", "examples/simulate/jobs-burst.csv", "--format", "json",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(
      result.stderr.contains(
        "note: the predictive floor of 'worker' learns from the simulated run as it goes; its history (from recorded.csv and what it sees) is read by run and replay"
      ), "\(result.stderr)")
  }

  @Test("examples/variants/slo.yaml from its min: the SLO's capacity fills the L4s to their max, then H100s")
  func variantSLO() throws {
    // The first 4,000 requests of the conversation trace: about 14 minutes.
    let trace = temporaryFile("conv-start.csv")
    let log = temporaryFile("variant-slo.jsonl")
    defer {
      try? FileManager.default.removeItem(at: trace)
      try? FileManager.default.removeItem(at: log)
    }
    let rows = try String(contentsOfFile: "examples/traces/AzureLLMInferenceTrace_conv.csv", encoding: .utf8)
      .split(separator: "\n").prefix(4001)
    try (rows.joined(separator: "\n") + "\n").write(to: trace, atomically: true, encoding: .utf8)
    let result = try runCapstan([
      "simulate", "examples/variants/slo.yaml", "--trace", trace.path, "--start", "min", "--audit-log",
      log.path,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("replica-h by variant"), "\(result.stdout)")
    let records = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map {
      try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    let ups = records.filter { $0["event"] as? String == "scale_up" }
    let moves = ups.map { "\($0["process"] ?? "") \($0["from"] ?? "") -> \($0["to"] ?? "")" }
    // The min's one unit is two L4s; the L4s go to their max of four before any H100 starts.
    #expect(moves.first == "inference.l4 2 -> 4", "\(moves)")
    #expect(moves.dropFirst().allSatisfy { $0.hasPrefix("inference.h100 ") } && moves.count > 1, "\(moves)")
    // Every variant's move carries the process's SLO sizing.
    #expect(
      ups.allSatisfy { $0["mode"] as? String == "simulate" && $0["slo"] is [String: Any] }, "\(records)")
  }

  @Test("a bad trace or a trace for a process with no simulation section stops before running")
  func refusals() throws {
    let bad = temporaryFile("bad.csv")
    defer { try? FileManager.default.removeItem(at: bad) }
    try "timestamp,work_seconds\n10,1\n5,1\n".write(to: bad, atomically: true, encoding: .utf8)
    let unsorted = try runCapstan(["simulate", "examples/simulate/jobs.yaml", "--trace", bad.path])
    #expect(unsorted.status == 1)
    #expect(unsorted.stderr.hasPrefix("\(bad.path):3: error: this request arrives before"))
    #expect(unsorted.stdout.isEmpty)

    let unsimulated = try runCapstan([
      "simulate", "policies/llm-serving.yaml", "--trace", "inference=examples/simulate/jobs-burst.csv",
    ])
    #expect(unsimulated.status == 1)
    #expect(unsimulated.stderr.contains("process 'inference' has a trace but no simulation section"))
  }

  @Test(
    "simulate is bounded: a mistyped year stops at the request's line; a rate far too low, a tiling past the request cap and a token rate no server has are refused"
  )
  func bounded() throws {
    let typo = temporaryFile("typo.csv")
    defer { try? FileManager.default.removeItem(at: typo) }
    // 1970 then 2199: 230 years of 15-second ticks.
    try "timestamp,work_seconds\n0,1\n7226582400,1\n".write(to: typo, atomically: true, encoding: .utf8)
    let year = try runCapstan(
      ["simulate", "examples/simulate/jobs.yaml", "--trace", typo.path], timeout: 120)
    #expect(year.status == 1)
    #expect(year.stderr.hasPrefix("\(typo.path):3: error: this request arrives"), "\(year.stderr)")
    #expect(year.stderr.contains("is its timestamp a typo"))

    let tiny = try runCapstan(Self.jobs + ["--rate", "1e-300"], timeout: 120)
    #expect(tiny.status != 0 && tiny.stderr.contains("--rate 1e-300 must be from 0.001 to 1000"))

    let tiled = try runCapstan(Self.jobs + ["--rate", "1000", "--tile", "8000h"], timeout: 300)
    #expect(tiled.status == 1)
    #expect(tiled.stderr.contains("more than 20000000 requests: tile it to less"), "\(tiled.stderr)")

    let policy = try policyFile(
      "slow.yaml",
      """
      processes:
        llm:
          scaling: {metric: q, target: 5, min: 1, max: 4}
          simulation: {slots: 1, prefill_tokens_per_second: 1e-320, signals: {q: queue_depth}, slo: {latency: ttft, bound: 2s}}
      """)
    defer { try? FileManager.default.removeItem(at: policy) }
    let rate = try runCapstan([
      "simulate", policy.path, "--trace", "examples/traces/AzureLLMInferenceTrace_code.csv",
    ])
    #expect(rate.status == 1)
    #expect(
      rate.stderr.contains(":4:55: error: '1e-320' tokens per second is slower than any server"),
      "\(rate.stderr)")
  }

  @Test("a signal the simulation section does not map is refused at the section's line")
  func unmappedAtItsLine() throws {
    let policy = try policyFile(
      "unmapped.yaml",
      """
      processes:
        w:
          scaling: {metric: depth, target: 5, min: 1, max: 4}
          simulation: {slots: 1, signals: {other: queue_depth}, slo: {latency: e2e, bound: 1m}}
      """)
    defer { try? FileManager.default.removeItem(at: policy) }
    let result = try runCapstan(["simulate", policy.path, "--trace", "examples/simulate/jobs-burst.csv"])
    #expect(result.status == 1)
    #expect(
      result.stderr.hasPrefix("\(policy.path):4:") && result.stderr.contains("says nothing of 'depth'"),
      "\(result.stderr)")
    let missing = try runCapstan(["simulate", "examples/simulate/jobs.yaml", "--trace", "no-such-trace.csv"])
    #expect(missing.stderr.contains("no-such-trace.csv: error: cannot read the file"), "\(missing.stderr)")
  }

  @Test(
    "--start min starts every run cold and says so; warm is the default; an unknown --start is refused with the choices"
  )
  func startChoice() throws {
    let cold = try runCapstan(Self.jobs + ["--start", "min"])
    #expect(cold.status == 0, "\(cold.stderr)")
    #expect(cold.stdout.contains("every run starts cold, at its min (--start oracle: warm)"))
    let warm = try runCapstan(Self.jobs + ["--format", "json"])
    let object = try JSONSerialization.jsonObject(with: Data(warm.stdout.utf8)) as? [String: Any]
    #expect(object?["start"] as? String == "oracle")
    let refused = try runCapstan(Self.jobs + ["--start", "hot"])
    #expect(refused.status != 0)
    #expect(refused.stderr.contains("'oracle'") && refused.stderr.contains("'min'"), "\(refused.stderr)")
  }

  @Test("a trace through a pipe is read once and simulated in full")
  func pipedTrace() throws {
    let fromFile = try runCapstan(Self.jobs + ["--format", "json"])
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [
      "-c",
      #""$0" simulate examples/simulate/jobs.yaml --trace <(cat examples/simulate/jobs-burst.csv) --format json"#,
      try CapstanBinary.url().path,
    ]
    process.currentDirectoryURL = repositoryRoot
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let piped = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    #expect(fromFile.stdout.contains(#""requests" : 2299"#))
    // The same simulation but for the trace's name.
    #expect(piped.contains(#""requests" : 2299"#))
  }

  @Test(
    "a bare --trace with two simulated processes asks which one, and a bad --rate is refused")
  func ambiguousTrace() throws {
    let policy = try policyFile(
      "two.yaml",
      """
      processes:
        a:
          scaling: {metric: q, target: 5, min: 1, max: 2}
          simulation: {slots: 1, signals: {q: queue_depth}, slo: {latency: e2e, bound: 1m}}
        b:
          scaling: {metric: r, target: 5, min: 1, max: 2}
          simulation: {slots: 1, signals: {r: queue_depth}, slo: {latency: e2e, bound: 1m}}
      """)
    defer { try? FileManager.default.removeItem(at: policy) }
    let result = try runCapstan(["simulate", policy.path, "--trace", "examples/simulate/jobs-burst.csv"])
    #expect(result.status != 0)
    #expect(result.stderr.contains("the policy simulates a, b; write --trace PROCESS=FILE"))
    let rate = try runCapstan(Self.jobs + ["--rate", "0"])
    #expect(rate.status != 0 && rate.stderr.contains("--rate 0.0 must be from 0.001 to 1000"))
  }

  @Test("the LLM example on the Azure conversation trace the repository carries")
  func llmExample() throws {
    let result = try runCapstan([
      "simulate", "examples/simulate/llm.yaml", "--trace", "examples/traces/AzureLLMInferenceTrace_conv.csv",
      "--format", "json",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains(#""requests" : 19366"#))
  }
}

@Suite("capstan tune, end to end")
struct TuneCommandTests {
  @Test(
    "tune writes a policy that loads and differs only in the values it tuned; the same seed, the same output")
  func tunesTheJobsExample() throws {
    let out = temporaryFile("tuned.yaml")
    defer { try? FileManager.default.removeItem(at: out) }
    let arguments = [
      "tune", "examples/simulate/jobs.yaml", "--trace", "examples/simulate/jobs-burst.csv", "--candidates",
      "24",
      "--seed", "3",
    ]
    let first = try runCapstan(arguments + ["--out", out.path])
    #expect(first.status == 0, "\(first.stderr)")
    #expect(first.stdout.contains("24 candidates, seed 3"))
    #expect(first.stdout.contains("as written"))
    let original = try String(
      contentsOf: repositoryRoot.appendingPathComponent("examples/simulate/jobs.yaml"), encoding: .utf8)
    let tuned = try String(contentsOf: out, encoding: .utf8)
    #expect(tuned.split(separator: "\n").count == original.split(separator: "\n").count)
    let validated = try runCapstan(["validate", out.path])
    #expect(validated.status == 0, "\(validated.stderr)")
    #expect(try runCapstan(arguments).stdout == first.stdout)
  }

  @Test("a policy that writes no value tune can change is refused with what to write, and nothing is written")
  func nothingToTune() throws {
    // Only max is written, through an anchor: no value for tune to move.
    let policy = try policyFile(
      "bare.yaml",
      """
      processes:
        w:
          scaling: {metric: q, max: &top 3}
          simulation: {slots: 1, signals: {q: queue_depth}, slo: {latency: e2e, bound: 1m}}
      """)
    let out = temporaryFile("never.yaml")
    defer { try? FileManager.default.removeItem(at: policy) }
    let result = try runCapstan([
      "tune", policy.path, "--trace", "examples/simulate/jobs-burst.csv", "--out", out.path,
    ])
    #expect(result.status == 1)
    #expect(result.stderr.contains("writes no value tune can change for the traced processes"))
    #expect(!FileManager.default.fileExists(atPath: out.path))
  }
}
