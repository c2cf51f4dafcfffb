import CapstanCore
import Foundation
import Testing

@testable import CapstanSimulation

func policy(_ yaml: String) throws -> Policy { try PolicyLoader.load(yaml: yaml, file: "p.yaml").policy }

/// Jobs at the given arrival times, each taking `work` seconds on one slot.
func jobs(_ arrivals: [Double], work: Double) -> Trace {
  Trace(
    kind: .jobs, start: Date(timeIntervalSince1970: 1_700_000_000),
    requests: arrivals.map { Trace.Request(arrival: $0, workSeconds: work) })
}

/// A batch worker `w` tracking its queue depth (`q`) at 1 per replica, from 0 to `max`,
/// simulated with `slots` a replica and the given SLO (flow YAML such as `latency: e2e, bound:
/// 1h`); `simulation` adds lines to its simulation section, `autoscaling` is its flow mapping.
func queueWorker(
  max: Int, slots: Int = 1, slo: String, simulation: [String] = [], autoscaling: String? = nil,
  interval: String? = nil
) throws -> Policy {
  var lines = interval.map { ["controller: {interval: \($0)}"] } ?? []
  lines += [
    "processes:", "  w:", "    class: batch", "    scaling: {metric: q, target: 1, min: 0, max: \(max)}",
    "    simulation:", "      slots: \(slots)",
  ]
  lines += simulation.map { "      " + $0 }
  lines += ["      signals: {q: queue_depth}", "      slo: {\(slo)}"]
  if let autoscaling { lines += ["autoscaling:", "  w: \(autoscaling)"] }
  return try policy(lines.joined(separator: "\n") + "\n")
}

/// A fixed fleet of `replicas` with `slots` each: no rule moves it.
func fixedFleet(replicas: Int, slots: Int, startup: String = "0s", slo: String = "queue_wait, bound: 1s")
  throws -> Policy
{
  try policy(
    """
    processes:
      w:
        class: batch
        scaling: {metric: q, min: \(replicas), max: \(replicas)}
        simulation:
          slots: \(slots)
          startup: \(startup)
          signals: {q: queue_depth}
          slo: {latency: \(slo), target: 99%}
    """)
}

@Suite("Simulator")
struct SimulatorTests {
  @Test("constant arrivals on a fleet with room: no wait, and replica-hours are the span")
  func constantArrivals() throws {
    let trace = jobs(stride(from: 0.0, through: 590, by: 10).map { $0 }, work: 5)
    let result = try Simulator(policy: fixedFleet(replicas: 1, slots: 1), traces: ["w": trace]).run()
    let w = try #require(result.processes.first)
    #expect(w.requests == 60 && w.failed == 0)
    // Ticks every 15 s until one at least an interval past the last arrival (590 + 15) finds
    // the fleet idle: the last at 615 s.
    #expect(abs(w.replicaHours - 615.0 / 3600) < 1e-9)
    #expect(w.sloAttainment == 1 && w.sloMissMinutes == 0)
    #expect(w.latencyP50 == 0 && w.latencyP99 == 0)
    #expect(w.scaleActions == 0 && w.peakReplicas == 1)
  }

  @Test("a queue forms exactly as FIFO on one slot: waits of 0, 10 and 20 seconds")
  func fifoWaits() throws {
    let trace = jobs([0, 0, 0], work: 10)
    let policy = try fixedFleet(replicas: 1, slots: 1, slo: "queue_wait, bound: 15s")
    let w = try #require(try Simulator(policy: policy, traces: ["w": trace]).run().processes.first)
    // Waits 0, 10, 20: two of three inside 15 s.
    #expect(abs(w.sloAttainment - 2.0 / 3) < 1e-9)
    #expect(w.latencyP50 == 10 && w.latencyP99 == 20)
    #expect(w.failed == 0)
  }

  @Test("a run without latencies, as the oracle's search runs, scores the same and reads no percentile")
  func withoutLatencies() throws {
    let trace = jobs([0, 0, 0, 40, 41], work: 10)
    let policy = try fixedFleet(replicas: 1, slots: 1, slo: "queue_wait, bound: 15s")
    var simulator = try Simulator(policy: policy, traces: ["w": trace])
    let kept = try #require(try simulator.run().processes.first)
    simulator.latencies = false
    let scored = try #require(try simulator.run().processes.first)
    #expect(kept.latencyP99 == 20 && scored.latencyP99 == 0 && scored.latencyP50 == 0)
    #expect(scored.sloAttainment == kept.sloAttainment && abs(kept.sloAttainment - 4.0 / 5) < 1e-9)
    #expect(scored.replicaHours == kept.replicaHours && scored.requests == 5)
  }

  @Test("e2e latency is the wait plus the service time; two slots serve two at once")
  func slotsAndE2E() throws {
    let trace = jobs([0, 0, 0], work: 10)
    let policy = try fixedFleet(replicas: 1, slots: 2, slo: "e2e, bound: 10s")
    let w = try #require(try Simulator(policy: policy, traces: ["w": trace]).run().processes.first)
    // Two start at once and end at 10 s; the third starts at 10 s and ends at 20 s.
    #expect(w.latencyP50 == 10 && w.latencyP99 == 20)
    #expect(abs(w.sloAttainment - 2.0 / 3) < 1e-9)
  }

  @Test("LLM service: input / prefill + output / decode; ttft is the wait plus the prefill")
  func llmService() throws {
    let policy = try policy(
      """
      processes:
        m:
          scaling: {metric: u, min: 1, max: 1}
          simulation:
            slots: 1
            prefill_tokens_per_second: 1000
            decode_tokens_per_second: 10
            signals: {u: utilization}
            slo: {latency: ttft, bound: 1s, target: 99%}
      """)
    let trace = Trace(
      kind: .llm, start: Date(timeIntervalSince1970: 0),
      requests: [
        .init(arrival: 0, inputTokens: 500, outputTokens: 100),
        .init(arrival: 1, inputTokens: 2000, outputTokens: 10),
      ])
    let m = try #require(try Simulator(policy: policy, traces: ["m": trace]).run().processes.first)
    // First: ttft 0.5 s, done at 0.5 + 10 = 10.5 s. Second waits 9.5 s, ttft 9.5 + 2 = 11.5 s.
    #expect(m.latencyP50 == 0.5 && m.latencyP99 == 11.5)
    #expect(m.sloAttainment == 0.5)
  }

  @Test("a replica asked for costs from the ask and serves after its startup")
  func startupDelay() throws {
    let policy = try queueWorker(
      max: 1, slo: "latency: queue_wait, bound: 35s, target: 99%", simulation: ["startup: 30s"],
      autoscaling: "{scale_up: {stabilization_window: 0s}, scale_down: {stabilization_window: 0s}}",
      interval: "10s")
    // One job at 5 s: seen at the 10 s tick, the replica is ready at 40 s, the job waits 35 s.
    let w = try #require(
      try Simulator(policy: policy, traces: ["w": jobs([5], work: 2)]).run().processes.first)
    #expect(w.latencyP50 == 35)
    #expect(w.sloAttainment == 1)
    #expect(w.scaleActions >= 1)
  }

  @Test("an idle gap scales to zero and costs less than a fixed fleet")
  func idleGap() throws {
    let scaling = try queueWorker(
      max: 2, slo: "latency: queue_wait, bound: 60s",
      autoscaling: "{scale_up: {stabilization_window: 0s}, scale_down: {stabilization_window: 30s}}")
    let trace = jobs([0, 1, 2, 1800, 1801], work: 5)
    let zero = try #require(try Simulator(policy: scaling, traces: ["w": trace]).run().processes.first)
    let fixed = try #require(
      try Simulator(policy: fixedFleet(replicas: 2, slots: 1), traces: ["w": trace]).run().processes.first)
    #expect(zero.failed == 0)
    #expect(zero.replicaHours < fixed.replicaHours / 5)
    #expect(zero.scaleActions >= 3)
  }

  @Test("a drain that runs out of time cuts its requests short, and they count as failed")
  func drainCutsShort() throws {
    let policy = try queueWorker(
      max: 2, slo: "latency: e2e, bound: 1h",
      autoscaling:
        "{scale_up: {stabilization_window: 0s}, scale_down: {stabilization_window: 0s, action: {drain_timeout: 10s}}}"
    )
    // A 100 s job; the queue is empty at the next tick, so the replica is removed and cut short.
    let w = try #require(
      try Simulator(policy: policy, traces: ["w": jobs([0, 200], work: 100)]).run().processes.first)
    #expect(w.failed == 2)
  }

  @Test("the same trace twice gives the same result, and so does the audit")
  func deterministic() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "../../examples/simulate/jobs-burst.csv"
    ).standardized
    let trace = try Trace.load(path: url.path)
    let text = try String(
      contentsOf: url.deletingLastPathComponent().appendingPathComponent("jobs.yaml"), encoding: .utf8)
    let policy = try policy(text)
    func run() throws -> (SimulationResult, [String]) {
      var lines: [String] = []
      let result = try Simulator(policy: policy, traces: ["worker": trace]).run {
        lines.append(AuditRecord($0, mode: .simulate).jsonLine())
      }
      return (result, lines)
    }
    let (first, firstAudit) = try run()
    let (second, secondAudit) = try run()
    #expect(first == second)
    #expect(firstAudit == secondAudit && !firstAudit.isEmpty)
  }

  @Test(
    "a traced process without what the simulation needs is refused with what to add",
    arguments: [
      ("processes:\n  w: {scaling: {metric: q, min: 1, max: 2}}\n", "no simulation section"),
      (
        "processes:\n  w:\n    scaling: {metric: q, target: 5, min: 1, max: 2}\n    simulation: {slots: 1, signals: {}, slo: {latency: e2e, bound: 1s}}\n",
        "says nothing of 'q'"
      ),
    ])
  func refused(yaml: String, message: String) throws {
    let policy = try policy(yaml)
    #expect {
      try Simulator(policy: policy, traces: ["w": jobs([0], work: 1)])
    } throws: { error in
      "\(error)".contains(message)
    }
  }
}

@Suite("Traces")
struct TraceTests {
  @Test("the Azure CSV, Mooncake JSON Lines and the generic CSVs read as published")
  func formats() throws {
    let azure = try Trace.parse(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8\n",
      file: "a.csv")
    let azureRequests = try azure.collect()
    #expect(azure.kind == .llm && azureRequests.count == 2)
    #expect(abs(azureRequests[1].arrival - 0.052) < 1e-6)
    #expect(azureRequests[0].inputTokens == 4808 && azureRequests[0].outputTokens == 10)
    let mooncake = try Trace.parse(
      #"{"timestamp": 0, "input_length": 40, "output_length": 6, "hash_ids": [0]}"# + "\n"
        + #"{"timestamp": 1500, "input_length": 7, "output_length": 2, "hash_ids": [1]}"#, file: "m.jsonl")
    #expect(try mooncake.collect().map(\.arrival) == [0, 1.5])
    let generic = try Trace.parse(
      "timestamp,work_seconds\n2026-01-01T00:00:00Z,3\n1767225610,4\n", file: "j.csv")
    let jobs = try generic.collect()
    #expect(generic.kind == .jobs && jobs.map(\.arrival) == [0, 10])
    #expect(jobs.map(\.workSeconds) == [3, 4])
  }

  @Test(
    "a bad trace is refused at its line, with what was expected",
    arguments: [
      ("time,work\n1,2\n", "t.csv:1: error: unknown trace header"),
      (
        "timestamp,work_seconds\n10,1\n5,1\n",
        "t.csv:3: error: this request arrives before the one on the line above"
      ),
      ("timestamp,work_seconds\n10,nan\n", "t.csv:2: error: 'nan' in column work_seconds is not a number"),
      ("timestamp,work_seconds\n10,-3\n", "t.csv:2: error: '-3' in column work_seconds"),
      ("timestamp,work_seconds\n10,1,2\n", "t.csv:2: error: 3 cells for 2 columns"),
      ("timestamp,work_seconds\n99999999999999,1\n", "t.csv:2: error: '99999999999999' is not a time"),
      (#"{"timestamp": "x"}"#, "t.csv:1: error: not a Mooncake request"),
      ("timestamp,work_seconds\n", "t.csv:2: error: the trace has no requests"),
    ])
  func refused(text: String, message: String) {
    #expect {
      try Trace.parse(text, file: "t.csv")
    } throws: { error in
      "\(error)".hasPrefix(message)
    }
  }

  @Test(
    "a trace file streams: read from disk it gives the requests the same text gives in memory, through every stage"
  )
  func streamedAsInMemory() throws {
    var text = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
    for second in 0..<3_000 {
      text +=
        "2023-11-16 18:\(String(format: "%02d:%02d", second / 60 % 60, second % 60)).5,\(100 + second % 7),\(second % 5)\r\n"
      if second == 1_500 { text += "  \r\n" }
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("trace-\(UUID().uuidString).csv")
      .path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let streamed = try Trace.load(path: path).scaled(rate: 1.5).tiled(to: 20_000).diurnal(peakToTrough: 4)
    let held = try Trace.parse(text, file: path).scaled(rate: 1.5).tiled(to: 20_000).diurnal(peakToTrough: 4)
    let requests = try streamed.collect()
    let inMemory = try held.collect()
    #expect(requests.count > 3_000 && requests == inMemory)
    #expect(streamed.start == held.start)
  }

  @Test("a trace file that changes after it was checked stops the run at the bad line; a missing one says so")
  func changedOrMissing() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("trace-\(UUID().uuidString).csv")
      .path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try "timestamp,work_seconds\n0,1\n10,1\n".write(toFile: path, atomically: true, encoding: .utf8)
    let trace = try Trace.load(path: path)
    try "timestamp,work_seconds\n0,1\n10,oops\n".write(toFile: path, atomically: true, encoding: .utf8)
    let simulator = try Simulator(policy: fixedFleet(replicas: 1, slots: 1), traces: ["w": trace])
    #expect {
      try simulator.run()
    } throws: { error in
      "\(error)".hasPrefix("\(path):3: error: 'oops' in column work_seconds is not a number")
    }
    #expect {
      try Trace.load(path: path + ".gone")
    } throws: { error in
      "\(error)".hasPrefix("\(path).gone: error: cannot read the file: No such file")
    }
  }

  @Test("--rate compresses arrivals; tiling repeats the trace to the length asked")
  func rateAndTile() throws {
    let trace = jobs([0, 10, 20], work: 1)
    #expect(try trace.scaled(rate: 2).collect().map(\.arrival) == [0, 5, 10])
    let tiled = try trace.tiled(to: 60)
    #expect(try tiled.collect().map(\.arrival) == [0, 10, 20, 30, 40, 50])
  }

  @Test(
    "a trace whose first request comes late repeats its requests, not its lead: each copy starts one mean gap after the last"
  )
  func tileLateStart() throws {
    // A slice of a longer trace: its first request 10 minutes in.
    let late = jobs([600, 610, 620], work: 1)
    let arrivals = try late.tiled(to: 700).collect().map(\.arrival)
    #expect(arrivals == [600, 610, 620, 630, 640, 650, 660, 670, 680, 690])
    // A day of it holds the requests of a day: 3 every 30 s after the first ten minutes.
    #expect(try late.tiled(to: 86_400).collect().count == 3 * 2_860)
  }

  @Test("a trace whose requests all arrive at one time has no span to repeat, and --tile says so")
  func tileOneInstant() throws {
    #expect(throws: Trace.ShapeError.self) { try jobs([5], work: 1).tiled(to: 60) }
    #expect(throws: Trace.ShapeError.self) { try jobs([5, 5, 5], work: 1).tiled(to: 60) }
  }
}

@Suite("Simulation model details")
struct SimulationModelTests {
  @Test("a scrape lag shows the engine the measurement of one lag ago, so capacity comes a lag later")
  func scrapeLag() throws {
    func firstStart(lag: String) throws -> Double {
      let policy = try queueWorker(
        max: 1, slo: "latency: queue_wait, bound: 1h", simulation: ["scrape_lag: \(lag)"],
        autoscaling: "{scale_up: {stabilization_window: 0s}}", interval: "10s")
      let w = try #require(
        try Simulator(policy: policy, traces: ["w": jobs([5], work: 1)]).run().processes.first)
      return w.latencyP50
    }
    // The job arrives at 5 s. Without lag, the 10 s tick sees it: it starts at 10 s (waits 5 s).
    #expect(try firstStart(lag: "0s") == 5)
    // With 20 s of lag, the 30 s tick is the first to see the 10 s measurement: it waits 25 s.
    #expect(try firstStart(lag: "20s") == 25)
  }

  @Test("the work bound is the trace's service time over the slots: no schedule uses less")
  func workBound() throws {
    let policy = try fixedFleet(replicas: 3, slots: 2)
    let w = try #require(
      try Simulator(policy: policy, traces: ["w": jobs([0, 0, 0, 0], work: 900)]).run().processes.first)
    // 4 jobs × 900 s on 2 slots: 1,800 replica-seconds, half an hour.
    #expect(w.workBoundReplicaHours == 0.5)
    #expect(w.replicaHours >= w.workBoundReplicaHours)
  }
}

@Suite("Daily shape")
struct DiurnalTests {
  @Test("a daily shape keeps the noon hour and thins the midnight hour to the ratio asked")
  func shape() throws {
    // One request a second for a day, from midnight UTC.
    let flat = Trace(
      kind: .jobs, start: Date(timeIntervalSince1970: 1_700_006_400),
      requests: (0..<86_400).map { Trace.Request(arrival: Double($0), workSeconds: 1) })
    let shaped = flat.diurnal(peakToTrough: 10)
    let kept = try shaped.collect()
    func count(hour: Int) -> Int {
      kept.filter { Int($0.arrival) / 3600 == hour }.count
    }
    let noon = Double(count(hour: 11) + count(hour: 12))
    let midnight = Double(count(hour: 23) + count(hour: 0))
    #expect(noon / midnight > 7 && noon / midnight < 13)
    #expect(try flat.diurnal(peakToTrough: 1).collect().count == flat.collect().count)
    #expect(try kept == flat.diurnal(peakToTrough: 10).collect())
  }
}

@Suite("Trace cells")
struct TraceCellTests {
  @Test(
    "a cell is a decimal number: a NUL byte inside it and a hex number are refused at their line",
    arguments: ["3\u{0}600", "0x10", "1e3x"])
  func strictCells(cell: String) throws {
    #expect {
      try Trace.parse("timestamp,work_seconds\n1700000000,1\n1700000001,\(cell)\n", file: "t.csv")
    } throws: { error in
      "\(error)".hasPrefix("t.csv:3: error: '") && "\(error)".contains("is not a number of 0 or more")
    }
    let plain = try Trace.parse("timestamp,work_seconds\n1700000000,1.5e1\n", file: "t.csv").collect()
    #expect(plain.first?.workSeconds == 15)
  }
}
