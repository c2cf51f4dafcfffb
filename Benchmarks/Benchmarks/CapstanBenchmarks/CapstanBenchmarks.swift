import Benchmark
import CapstanCore
import CapstanReplay
import Foundation
import Logging

/// The example policy and day from the repository root.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

func examplePolicy() -> Policy {
  let text = try! String(
    contentsOf: root.appendingPathComponent("policies/llm-serving.yaml"), encoding: .utf8)
  return try! PolicyLoader.load(yaml: text, file: "llm-serving.yaml").policy
}

/// The example day tiled 30 times, each copy shifted a day later: a month of one-minute rows.
func monthOfMetricsCSV() -> String {
  let day = try! String(contentsOf: root.appendingPathComponent("examples/llm-day.csv"), encoding: .utf8)
  var lines = day.split(separator: "\n")
  let header = lines.removeFirst()
  var out = String(header) + "\n"
  for copy in 0..<30 {
    for line in lines {
      let comma = line.firstIndex(of: ",")!
      let time = RFC3339Parser.parse(String(line[..<comma]))!.addingTimeInterval(Double(copy) * 86_400)
      out += "\(Int(time.timeIntervalSince1970))" + line[comma...] + "\n"
    }
  }
  return out
}

/// The example policy's signals and replicas with the load at its targets: a steady tick.
let steadySignals: [String: Double] = [
  "gpu_utilization": 70, "request_queue_depth": 0, "p95_latency": 10, "queue_depth": 200,
  "oldest_message_age": 5, "llm_cost_usd_per_hour": 40,
]
let steadyReplicas = ["inference": ReplicaStatus(4), "agent-worker": ReplicaStatus(2)]

/// A policy of `count` queue workers at their target, built once (in a benchmark's setup, so a
/// filtered run does not build it) and ticked on by every sample.
final class ManyTargets: @unchecked Sendable {
  let count: Int
  private(set) var engine: ScalingEngine!
  private(set) var named = EngineInputs(signals: [:], replicas: [:])
  private(set) var indexed = IndexedInputs(signals: [], replicas: [])
  private var state = EngineState()
  private var tick = 0
  private let start = Date(timeIntervalSince1970: 1_700_092_800)

  init(count: Int) { self.count = count }

  func build() {
    guard engine == nil else { return }
    engine = manyWorkers(count)
    for index in 0..<count {
      named.signals["q\(index)"] = 20
      named.replicas["w\(index)"] = ReplicaStatus(2)
    }
    indexed = IndexedInputs(
      signals: engine.signalOrder.map { named.signals[$0] },
      replicas: engine.policy.targets.map { named.replicas[$0.name] })
    for _ in 0..<3 {
      var current = takeState()
      (_, current) = engine.decide(indexed, state: consume current, now: nextTime())
      state = current
    }
  }

  /// One tick, and only the tick measured: from the inputs by name or by position.
  func tick(measuredBy benchmark: Benchmark, byPosition: Bool) {
    let now = nextTime()
    var current = takeState()
    benchmark.startMeasurement()
    let decision: TickDecision
    if byPosition {
      (decision, current) = engine.decide(indexed, state: consume current, now: now)
    } else {
      (decision, current) = engine.decide(named, state: consume current, now: now)
    }
    benchmark.stopMeasurement()
    state = current
    blackHole(decision)
  }

  /// The state, moved out so the engine updates it in place (a class's property cannot be
  /// consumed).
  private func takeState() -> EngineState {
    var taken = EngineState()
    swap(&taken, &state)
    return taken
  }

  func nextTime() -> Date {
    tick += 1
    return start.addingTimeInterval(Double(tick))
  }
}

/// `count` queue workers, each tracking a signal of its own.
func manyWorkers(_ count: Int) -> ScalingEngine {
  var yaml = "signals:\n"
  for index in 0..<count { yaml += "  q\(index): {}\n" }
  yaml += "processes:\n"
  for index in 0..<count {
    yaml += "  w\(index): {class: batch, scaling: {metric: q\(index), target: 10, min: 0, max: 5}}\n"
  }
  return ScalingEngine(policy: try! PolicyLoader.load(yaml: yaml, file: "many.yaml").policy)
}

enum RFC3339Parser {
  static func parse(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    return formatter.date(from: text)
  }
}

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(metrics: [
    .wallClock, .throughput, .mallocCountTotal, .peakMemoryResident,
  ])

  // One engine decision for two targets, their signals varying so every path is taken.
  Benchmark("engine decide (2 targets)", configuration: .init(scalingFactor: .kilo)) { benchmark in
    let engine = ScalingEngine(policy: examplePolicy())
    var state = EngineState()
    var inputs = EngineInputs(
      signals: [:], replicas: ["inference": ReplicaStatus(4), "agent-worker": ReplicaStatus(2)])
    let start = Date(timeIntervalSince1970: 1_700_092_800)
    benchmark.startMeasurement()
    for tick in benchmark.scaledIterations {
      let phase = Double(tick % 240)
      inputs.signals["gpu_utilization"] = 20 + phase / 3
      inputs.signals["request_queue_depth"] = phase
      inputs.signals["p95_latency"] = 10
      inputs.signals["queue_depth"] = phase * 5
      inputs.signals["oldest_message_age"] = phase
      inputs.signals["llm_cost_usd_per_hour"] = 40
      let (decision, next) = engine.decide(
        inputs, state: consume state, now: start.addingTimeInterval(Double(tick) * 15))
      state = next
      for action in decision.actions { inputs.replicas[action.process] = ReplicaStatus(action.to) }
      blackHole(decision)
    }
  }

  // A steady tick: load at the target, nothing to change, nothing to record. Its malloc count
  // is the engine's allocations per tick (the inputs are updated in place, not rebuilt).
  Benchmark("engine steady tick (2 targets)", configuration: .init(scalingFactor: .kilo)) { benchmark in
    let engine = ScalingEngine(policy: examplePolicy())
    var state = EngineState()
    var inputs = EngineInputs(signals: steadySignals, replicas: steadyReplicas)
    let start = Date(timeIntervalSince1970: 1_700_092_800)
    // Past the first ticks, which record the start.
    for tick in 0..<100 {
      let (_, next) = engine.decide(
        inputs, state: consume state, now: start.addingTimeInterval(Double(tick) * 15))
      state = next
    }
    benchmark.startMeasurement()
    for tick in benchmark.scaledIterations {
      inputs.signals["queue_depth"] = 200 + Double(tick % 2)
      let (decision, next) = engine.decide(
        inputs, state: consume state, now: start.addingTimeInterval(Double(100 + tick) * 15))
      state = next
      blackHole(decision)
    }
  }

  // The same steady tick from inputs kept in the engine's order (`IndexedInputs`): what a
  // driver that updates its inputs in place by position pays, with no name hashed.
  Benchmark("engine steady tick (2 targets, indexed inputs)", configuration: .init(scalingFactor: .kilo)) {
    benchmark in
    let engine = ScalingEngine(policy: examplePolicy())
    var state = EngineState()
    var inputs = IndexedInputs(
      signals: engine.signalOrder.map { steadySignals[$0] },
      replicas: engine.policy.targets.map { steadyReplicas[$0.name] })
    let queue = engine.position(ofSignal: "queue_depth")!
    let start = Date(timeIntervalSince1970: 1_700_092_800)
    for tick in 0..<100 {
      let (_, next) = engine.decide(
        inputs, state: consume state, now: start.addingTimeInterval(Double(tick) * 15))
      state = next
    }
    benchmark.startMeasurement()
    for tick in benchmark.scaledIterations {
      inputs.signals[queue] = 200 + Double(tick % 2)
      let (decision, next) = engine.decide(
        inputs, state: consume state, now: start.addingTimeInterval(Double(100 + tick) * 15))
      state = next
      blackHole(decision)
    }
  }

  // How a steady tick scales with the number of targets: each a queue worker on its own signal.
  for count in [1, 10, 100] {
    Benchmark("engine steady tick (\(count) targets)", configuration: .init(scalingFactor: .kilo)) {
      benchmark in
      let engine = manyWorkers(count)
      var inputs = EngineInputs(signals: [:], replicas: [:])
      for index in 0..<count {
        inputs.signals["q\(index)"] = 20
        inputs.replicas["w\(index)"] = ReplicaStatus(2)
      }
      var state = EngineState()
      let start = Date(timeIntervalSince1970: 1_700_092_800)
      for tick in 0..<3 {
        let (_, next) = engine.decide(
          inputs, state: consume state, now: start.addingTimeInterval(Double(tick)))
        state = next
      }
      benchmark.startMeasurement()
      for tick in benchmark.scaledIterations {
        let (decision, next) = engine.decide(
          inputs, state: consume state, now: start.addingTimeInterval(Double(3 + tick)))
        state = next
        blackHole(decision)
      }
    }
  }

  // 10,000 targets: one tick a sample, on one engine and one state that tick on from sample to
  // sample as `run` ticks (building 10,000 targets for every sample measured a tick just after
  // a fresh start instead). By name, and from inputs kept in the engine's order.
  let many = ManyTargets(count: 10_000)
  for byPosition in [false, true] {
    Benchmark(
      byPosition
        ? "engine steady tick (10000 targets, indexed inputs)" : "engine steady tick (10000 targets)",
      configuration: .init(maxDuration: .seconds(10), maxIterations: 500)
    ) { benchmark in
      many.tick(measuredBy: benchmark, byPosition: byPosition)
    } setup: {
      many.build()
    }
  }

  let month = monthOfMetricsCSV()
  let samples = month.utf8.reduce(0) { $0 + ($1 == 10 ? 1 : 0) } - 1

  Benchmark("parse a month of metrics (43,200 rows)", configuration: .init(maxIterations: 10)) { benchmark in
    for _ in benchmark.scaledIterations {
      blackHole(try! RecordedMetrics.parseCSV(month, file: "month.csv"))
    }
  }

  let metrics = try! RecordedMetrics.parseCSV(month, file: "month.csv")
  Benchmark("replay a month of metrics at 15s ticks", configuration: .init(maxIterations: 10)) { benchmark in
    let replay = Replay(policy: examplePolicy(), logger: Logger(label: "bench"))
    for _ in benchmark.scaledIterations {
      blackHole(try! replay.run(metrics))
    }
  }
  precondition(samples == 43_200)
}
