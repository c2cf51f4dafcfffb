import CapstanBackends
import CapstanController
import CapstanCore
import CapstanRuntime
import CapstanTestKit
import Foundation
import Logging
import MetricsTestKit
import Testing

/// The controller's own failure paths, with a recording backend and fake signals: no processes.
@Suite("Controller")
struct ControllerTests {
  @Test("a follower decides but acts on nothing and records nothing; when it leads, it acts")
  func follower() async throws {
    final class Gate: LeaderGate, @unchecked Sendable {
      var leading = false
      func isLeading(at now: Date) -> Bool { leading }
    }
    let gate = Gate()
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(40))], leader: gate)
    await harness.tick(0)
    await harness.tick(15)
    #expect(await harness.backend.applied.isEmpty)
    #expect(harness.records().isEmpty)
    // The leader scaled to 3 meanwhile; taking over is not "someone else's change".
    await harness.backend.setCount("worker", 3)
    gate.leading = true
    await harness.tick(30)
    #expect(await harness.backend.applied.map(\.to) == [4])
    #expect(harness.records().map { $0["event"] as? String } == ["scale_up"])
  }

  @Test("a block a follower saw is recorded when it leads: it wrote none while following")
  func followerBlockRecordedOnLeading() async throws {
    final class Gate: LeaderGate, @unchecked Sendable {
      var leading = false
      func isLeading(at now: Date) -> Bool { leading }
    }
    let gate = Gate()
    // 200 queued against a target of 10 wants 20; max is 8: a block at max, from the first tick.
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .value(200))], counts: ["worker": 8], leader: gate)
    await harness.tick(0)
    #expect(harness.records().isEmpty)
    gate.leading = true
    await harness.tick(15)
    let blocked = harness.records().filter { $0["event"] as? String == "blocked" }
    #expect(blocked.map { $0["reason"] as? String } == ["max_instances"])
    #expect(
      harness.metrics.counterTotal(
        label: "capstan_blocked_total", dimensions: [("process", "worker"), ("reason", "max_instances")]) == 1
    )
  }

  @Test("a hold that lasts is one record and a gauge at 1 for as long as it holds")
  func heldGauge() async throws {
    let queue = FakeSignal("queue", .value(200))
    // 200 queued against a target of 10 wants 20; max is 8.
    let harness = try ControllerHarness(signals: [queue], counts: ["worker": 8])
    func held(_ reason: String) throws -> Double? {
      try harness.metrics.expectGauge("capstan_held", [("process", "worker"), ("reason", reason)]).lastValue
    }
    #expect(try held("max_instances") == 0)
    for (tick, value) in [200.0, 150, 200, 150].enumerated() {
      queue.set(.value(value))
      await harness.tick(Double(tick) * 15)
      #expect(try held("max_instances") == 1)
    }
    // Wanted 20, then 15, then 20 again: each written once while the count stays at 8.
    let blocked = harness.records().filter { $0["event"] as? String == "blocked" }
    #expect(blocked.map { $0["to"] as? Int } == [20, 15])
    queue.set(.value(80))
    await harness.tick(60)
    #expect(try held("max_instances") == 0)
  }

  @Test("a tick longer than the interval is counted as an overrun; one that keeps inside it is not")
  func tickOverrun() async throws {
    func overruns(interval: String, signal: FakeSignal) async throws -> Int64 {
      let harness = try ControllerHarness(
        signals: [signal],
        yaml: "controller: {interval: \(interval)}\n" + ControllerHarness<RecordingBackend>.workerPolicy)
      await harness.tick(0)
      return harness.metrics.counterTotal(label: "capstan_tick_overruns_total", dimensions: [])
    }
    // The signal takes 1.5 s to answer (inside its 3 s timeout): the 1 s tick overruns.
    #expect(try await overruns(interval: "1s", signal: FakeSignal("queue", .slow(1.5, 10), timeout: 3)) == 1)
    // Nothing this tick does takes an hour.
    #expect(try await overruns(interval: "1h", signal: FakeSignal("queue", .value(10))) == 0)
  }

  @Test("leadership: a follower's start is only logged; becoming and ceasing to be leader are recorded")
  func leadership() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(10))])
    let now = Date(timeIntervalSince1970: 1_700_000_000)
    await harness.controller.observeLeadership(leading: false, identity: "me", holder: "other", now: now)
    #expect(harness.records().isEmpty)
    #expect(try harness.metrics.expectGauge("capstan_leader").lastValue == 0)
    await harness.controller.observeLeadership(leading: true, identity: "me", holder: "me", now: now)
    await harness.controller.observeLeadership(leading: true, identity: "me", holder: "me", now: now)
    #expect(try harness.metrics.expectGauge("capstan_leader").lastValue == 1)
    await harness.controller.observeLeadership(leading: false, identity: "me", holder: "me", now: now)
    await harness.controller.observeLeadership(leading: false, identity: "me", holder: "other", now: now)
    let records = harness.records()
    #expect(records.map { $0["event"] as? String } == ["leader_elected", "leader_lost"])
    #expect(
      records.allSatisfy { $0["process"] as? String == "*" && $0["reason"] as? String == "leader_election" })
    #expect((records.last?["detail"] as? String)?.contains("could not renew the lease") == true)
    #expect(await harness.controller.leaderIdentity == "other")
  }

  @Test("a refused action is recorded as blocked with the backend's words, forgotten, and tried again")
  func refusedAction() async throws {
    // A cooldown would block the retry if the failed scale-up were remembered as done.
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .value(40))],
      yaml: """
        processes:
          worker:
            scaling: {metric: queue, target: 10, min: 1, max: 8}
        autoscaling:
          worker: {scale_up: {action: {cooldown: 60s}}}
        """)
    await harness.backend.refuseNext(1, "the hook exited with status 5")
    await harness.tick(0)
    #expect(await harness.backend.counts["worker"] == 1)
    let blocked = try #require(harness.records().first { $0["event"] as? String == "blocked" })
    #expect(blocked["reason"] as? String == "backend_error")
    #expect((blocked["detail"] as? String)?.contains("the hook exited with status 5") == true)
    #expect(
      harness.metrics.counterTotal(label: "capstan_backend_errors_total", dimensions: [("process", "worker")])
        == 1)
    // Forgotten: the cooldown does not stop the next tick from trying again.
    await harness.tick(15)
    #expect(await harness.backend.counts["worker"] == 4)
    #expect(await harness.backend.applied.count == 1)
  }

  @Test("a variant's refused action is forgotten with its process's cooldown, and tried again")
  func refusedVariant() async throws {
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .value(40))], counts: ["worker.cheap": 1],
      yaml: """
        processes:
          worker:
            scaling: {metric: queue, target: 10, min: 1, max: 8}
            variants:
              dear: {cost_per_hour_usd: 4, capacity: 2}
              cheap: {cost_per_hour_usd: 1, capacity: 1}
        autoscaling:
          worker: {scale_up: {action: {cooldown: 60s}}}
        """)
    await harness.backend.refuseNext(1, "the hook exited with status 5")
    await harness.tick(0)
    #expect(await harness.backend.counts["worker.cheap"] == 1)
    let blocked = try #require(harness.records().first { $0["event"] as? String == "blocked" })
    #expect(blocked["process"] as? String == "worker.cheap")
    #expect(blocked["reason"] as? String == "backend_error")
    // The process's cooldown was forgotten with the variant's move: the next tick fills again.
    await harness.tick(15)
    #expect(await harness.backend.counts["worker.cheap"] == 4)
    #expect(await harness.backend.counts["worker.dear"] ?? 0 == 0)
    // /status lists the process beside its variants, its counts in units of capacity.
    let status = await harness.controller.status(now: Date())
    #expect(status.processes.map(\.name) == ["worker.dear", "worker.cheap", "worker"])
    let process = try #require(status.processes.last)
    #expect(process.current == 1 && process.desired == 4 && process.min == 1 && process.max == 8)
    // And /metrics its capacity beside its variants' replicas.
    let desired = try harness.metrics.expectGauge(
      "capstan_capacity", [("process", "worker"), ("state", "desired")])
    #expect(desired.lastValue == 4)
  }

  @Test("a failing signal is missing: no scale-down, one signal_missing record, every failure counted")
  func failingSignal() async throws {
    let queue = FakeSignal("queue", .failure("connection refused"))
    let harness = try ControllerHarness(signals: [queue], counts: ["worker": 5])
    for second in stride(from: 0.0, through: 45, by: 15) { await harness.tick(second) }
    #expect(await harness.backend.applied.isEmpty)
    #expect(harness.records().filter { $0["event"] as? String == "signal_missing" }.count == 1)
    #expect(
      harness.metrics.counterTotal(label: "capstan_signal_errors_total", dimensions: [("signal", "queue")])
        == 4)
    queue.set(.value(0))
    await harness.tick(60)
    #expect(harness.records().contains { $0["event"] as? String == "signal_restored" })
    #expect(await harness.backend.counts["worker"] == 1)
  }

  @Test(
    "a signal that does not answer within its timeout is missing, and the tick does not wait for it",
    .timeLimit(.minutes(10)))
  func slowSignal() async throws {
    // The fake answers 0 after 30 s: a tick that waited for it would count no error. The
    // counted error is the proof that it did not wait; the time limit only guards a hang.
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .slow(30, 0), timeout: 0.2)], counts: ["worker": 5])
    await harness.tick(0)
    #expect(await harness.backend.applied.isEmpty)
    #expect(
      harness.metrics.counterTotal(label: "capstan_signal_errors_total", dimensions: [("signal", "queue")])
        == 1)
  }

  @Test("a series_label signal whose query fails counts one error a tick, against the signal as declared")
  func seriesSignalErrors() async throws {
    let yaml = """
      signals:
        depth:
          prometheus: {url: "http://127.0.0.1:1", query: 'sum by (deployment) (q)', series_label: deployment}
      processes:
        a: {scaling: {metric: depth, target: 10, min: 1, max: 8}}
        b: {scaling: {metric: depth, target: 10, min: 1, max: 8}}
      """
    let harness = try ControllerHarness(
      signals: [FakeSignal("depth[a]", .failure("refused")), FakeSignal("depth[b]", .failure("refused"))],
      counts: ["a": 2, "b": 2], yaml: yaml)
    #expect(
      harness.metrics.counterTotal(label: "capstan_signal_errors_total", dimensions: [("signal", "depth")])
        == 0)
    await harness.tick(0)
    await harness.tick(15)
    #expect(
      harness.metrics.counterTotal(label: "capstan_signal_errors_total", dimensions: [("signal", "depth")])
        == 2)
    #expect(harness.metrics.counters(label: "capstan_signal_errors_total").count == 1)
    #expect(await harness.backend.applied.isEmpty)
  }

  @Test(
    "counters at 0 from the start for each process up to 1,000 processes; past that, each when it first counts; crash loops only where the backend keeps them"
  )
  func processCounters() async throws {
    func policy(_ count: Int) -> String {
      "processes:\n"
        + (0..<count).map { "  w\($0): {scaling: {metric: queue, target: 10, min: 1, max: 8}}" }
        .joined(separator: "\n")
    }
    let small = try ControllerHarness(signals: [FakeSignal("queue", .value(0))], yaml: policy(3))
    #expect(small.metrics.counters(label: "capstan_backend_errors_total").count == 3)
    #expect(small.metrics.counters(label: "capstan_scale_actions_total").count == 6)
    #expect(small.metrics.counters(label: "capstan_blocked_total").count == 3 * 7)
    // A RecordingBackend, like Kubernetes, does not restart replicas: no crash-loop series.
    #expect(small.metrics.recorders(label: "capstan_crash_looping_replicas").isEmpty)

    let count = ControllerMetrics.processCountersAtZero + 1
    let counts = Dictionary(uniqueKeysWithValues: (0..<count).map { ("w\($0)", 1) })
    let fleet = try ControllerHarness(
      signals: [FakeSignal("queue", .value(40))], counts: counts, yaml: policy(count))
    #expect(fleet.metrics.counters(label: "capstan_backend_errors_total").isEmpty)
    #expect(fleet.metrics.counters(label: "capstan_scale_actions_total").isEmpty)
    #expect(fleet.metrics.counters(label: "capstan_signal_errors_total").count == 1)
    await fleet.tick(0)
    // Every process scaled up: each has its one counter now, and its replicas.
    #expect(fleet.metrics.counters(label: "capstan_scale_actions_total").count == count)
    #expect(fleet.metrics.recorders(label: "capstan_replicas").count == 3 * count)
    #expect(fleet.metrics.counters(label: "capstan_blocked_total").isEmpty)
  }

  @Test("a process whose replicas cannot be read is not decided at that tick")
  func unreadableStatus() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(80))])
    await harness.backend.makeUnreadable("worker")
    await harness.tick(0)
    #expect(await harness.backend.applied.isEmpty)
    #expect(
      harness.metrics.counterTotal(label: "capstan_backend_errors_total", dimensions: [("process", "worker")])
        == 1)
  }

  @Test("state is saved after every decision, with what a restart needs")
  func savesState() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(40))])
    await harness.tick(0)
    let saved = try #require(try harness.savedState())
    #expect(saved.engine.targets["worker"]?.lastScaleUp == Date(timeIntervalSince1970: 1_700_000_000))
    #expect(saved.engine.lastTick == Date(timeIntervalSince1970: 1_700_000_000))
  }

  @Test("metrics: an SLO objective's error budget, once it steers")
  func errorBudgetMetrics() async throws {
    let signals = [
      FakeSignal("rate", .value(10)), FakeSignal("running", .value(20)), FakeSignal("ttft", .value(0.5)),
      FakeSignal("good", .value(0.995)),
    ]
    let harness = try ControllerHarness(
      signals: signals, counts: ["m": 2],
      yaml: """
        processes:
          m:
            scaling:
              min: 1
              max: 4
              slo: {latency: ttft, percentile: 99, bound: 2s, measured: ttft, within: good, period: 24h}
              load: rate
              running: running
        """)
    // An hour and a tick: the budget steers from the hour on.
    for tick in 0...241 { await harness.tick(Double(tick) * 15) }
    let dimensions = [("process", "m"), ("latency", "ttft")]
    let share = try harness.metrics.expectGauge("capstan_slo_period_share", dimensions)
    #expect(abs(share.lastValue! - 0.995) < 1e-9)
    // Half a percent missed in the first hour of a day whose budget is 1%: 1 - 0.5 / 24 left.
    let left = try harness.metrics.expectGauge("capstan_slo_budget_left", dimensions)
    #expect(abs(left.lastValue! - (1 - 0.5 / 24)) < 1e-3, "\(left.lastValue!)")
    let aim = try harness.metrics.expectGauge("capstan_slo_aim_percentile", dimensions)
    #expect(abs(aim.lastValue! - 95) < 1e-9)
    // /status says the same, at the last tick.
    let status = await harness.controller.status(now: Date(timeIntervalSince1970: 1_700_000_000 + 241 * 15))
    let budget = try #require(status.processes.first?.errorBudgets?.first)
    #expect(budget.latency == "ttft" && budget.periodSeconds == 86_400 && budget.aim == 95)
    #expect(budget.summary == "ttft error budget 98% left (99.5% within), sized for p95", "\(budget.summary)")
    // The share is read by the budget alone: missing, it holds no scale-down, and the
    // conditions say so.
    signals[3].set(.failure("no requests"))
    await harness.tick(242 * 15)
    let missing = await harness.controller.status(now: Date(timeIntervalSince1970: 1_700_000_000 + 242 * 15))
    let active = try #require(missing.processes.first?.conditions.first { $0.type == "ScalingActive" })
    #expect(active.status && active.message.hasSuffix("good missing, which holds no scale-down"), "\(active)")
  }

  @Test("metrics: replicas, signal values, actions, tick duration")
  func metrics() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(40))])
    await harness.tick(0)
    #expect(
      harness.metrics.counterTotal(
        label: "capstan_scale_actions_total", dimensions: [("process", "worker"), ("direction", "up")]) == 1)
    #expect(try harness.metrics.expectGauge("capstan_signal_value", [("signal", "queue")]).lastValue == 40)
    #expect(
      try harness.metrics.expectGauge("capstan_replicas", [("process", "worker"), ("state", "desired")])
        .lastValue == 4)
    #expect(try harness.metrics.expectTimer("capstan_tick_duration_seconds").values.count == 1)
  }

  @Test("a reload drains processes the new policy dropped, and refuses a change of backend")
  func reload() async throws {
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .value(20))], counts: ["worker": 2, "api": 3],
      yaml: """
        processes:
          worker: {scaling: {metric: queue, target: 10, min: 1, max: 8}}
          api: {scaling: {min: 3, max: 3}}
        """)
    await harness.tick(0)
    let dropped = try PolicyLoader.load(
      yaml: "processes:\n  worker: {scaling: {metric: queue, target: 10, min: 1, max: 8}}\n", file: "p.yaml")
    await harness.controller.reload(dropped, file: "p.yaml", now: Date(timeIntervalSince1970: 1_700_000_010))
    #expect(await harness.backend.counts["api"] == 0)
    let drained = try #require(harness.records().last { $0["event"] as? String == "scale_down" })
    #expect(drained["process"] as? String == "api" && drained["reason"] as? String == "policy_reload")

    let commandBackend = try PolicyLoader.load(
      yaml:
        "backend: {command: {argv: [scale]}}\nprocesses:\n  worker: {scaling: {metric: queue, target: 10, min: 1, max: 8}}\n",
      file: "p.yaml")
    await harness.controller.reload(
      commandBackend, file: "p.yaml", now: Date(timeIntervalSince1970: 1_700_000_020))
    let rejected = try #require(harness.records().last { $0["event"] as? String == "policy_rejected" })
    #expect((rejected["detail"] as? String)?.contains("restart it to switch") == true)
    #expect(await harness.controller.policy.backend == .local)
  }

  @Test("shutdown drains the backend")
  func shutdown() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(40))])
    await harness.controller.shutdown()
    #expect(await harness.backend.shutDown)
  }
}
