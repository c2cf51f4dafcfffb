import CapstanController
import CapstanCore
import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A worker whose floor reads its history from its signal's own Prometheus query.
func prometheusHistoryPolicy(url: String) -> String {
  """
  signals:
    queue:
      prometheus: {url: '\(url)', query: 'sum(queue_depth)'}
  processes:
    worker:
      startup: 2m
      scaling: {metric: queue, target: 10, min: 1, max: 8}
      predictive: {history: prometheus}
  """
}

@Suite("Controller: predictive floor")
struct PredictiveControllerTests {
  static let yaml = """
    processes:
      worker:
        startup: 2m
        scaling: {metric: queue, target: 10, min: 1, max: 8}
        predictive: {history: {file: history.csv}}
    """

  /// Yesterday a minute at a time: 10 queued, and 100 from 22:15 to 23:00 (the harness starts
  /// at 22:13:20).
  static func writeHistory(in folder: URL) throws {
    let now = 1_700_000_000.0
    var text = "timestamp,queue\n"
    for minute in stride(from: now - 86_400, to: now, by: 60) {
      let secondsIntoDay = minute.truncatingRemainder(dividingBy: 86_400)
      let busy = secondsIntoDay >= 22 * 3600 + 15 * 60 && secondsIntoDay < 23 * 3600
      text += "\(Int(minute)),\(busy ? 100 : 10)\n"
    }
    try text.write(to: folder.appendingPathComponent("history.csv"), atomically: true, encoding: .utf8)
  }

  @Test(
    "history read from a file at start: the floor is on as soon as it is read and scales ahead of the busy slot"
  )
  func historyFromFile() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(10))], yaml: Self.yaml)
    try Self.writeHistory(in: harness.folder)
    await harness.tickWithHistory(0)
    #expect(await harness.backend.applied.map(\.to) == [8])
    let records = harness.records()
    // (A first tick that had to go on without the history turned the floor off first.)
    #expect(records.suffix(2).map { $0["event"] as? String } == ["predictive_floor", "scale_up"])
    let up = try #require(records.last)
    #expect(up["reason"] as? String == "predictive_floor")
    let forecast = try #require(up["forecast"] as? [String: Any])
    #expect(forecast["forecast"] as? Double == 100 && forecast["replicas"] as? Int == 8)
    #expect(forecast["periods"] as? Int == 1)
    // The history is saved with the state, so a restart does not start from nothing.
    let saved = try #require(try harness.savedState())
    #expect(saved.engine.forecasts["worker"]?.history.periods.isEmpty == false)
  }

  @Test(
    "a history file that blocks (a FIFO with no writer) holds no tick: min is applied, the next ticks run, and the history is learned once it arrives"
  )
  func blockingHistory() async throws {
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .value(10))], counts: ["worker": 0], yaml: Self.yaml)
    let fifo = harness.folder.appendingPathComponent("history.csv")
    #expect(mkfifo(fifo.path, 0o644) == 0)
    await harness.tick(0)
    #expect(await harness.backend.applied.map(\.to) == [1])
    await harness.tick(15)
    await harness.tick(30)
    #expect(await harness.backend.applied.map(\.to) == [1])
    // A writer comes: the read that waited gets yesterday's rows, and a later tick learns them.
    var history = ""
    let now = 1_700_000_000.0
    history += "timestamp,queue\n"
    for minute in stride(from: now - 86_400, to: now, by: 60) {
      let secondsIntoDay = minute.truncatingRemainder(dividingBy: 86_400)
      let busy = secondsIntoDay >= 22 * 3600 + 15 * 60 && secondsIntoDay < 23 * 3600
      history += "\(Int(minute)),\(busy ? 100 : 10)\n"
    }
    let writer = try FileHandle(forWritingTo: fifo)
    try writer.write(contentsOf: Data(history.utf8))
    try writer.close()
    let learned = await eventually(timeout: 60) {
      await harness.tick(45)
      return await harness.backend.applied.map(\.to) == [1, 8]
    }
    #expect(learned)
  }

  @Test("the file is read again every refresh: rows written since are learned")
  func historyReadAgain() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(10))], yaml: Self.yaml)
    try Self.writeHistory(in: harness.folder)
    await harness.tickWithHistory(0)
    // Someone records on: a row of 500 two minutes in.
    let file = try FileHandle(forWritingTo: harness.folder.appendingPathComponent("history.csv"))
    try file.seekToEnd()
    try file.write(contentsOf: Data("\(1_700_000_000 + 120),500\n".utf8))
    try file.close()
    await harness.tick(300)
    #expect(
      try harness.savedState()?.engine.forecasts["worker"]?.history.periods.last?.peaks.contains(500) == false
    )
    await harness.tickWithHistory(600)
    #expect(
      try harness.savedState()?.engine.forecasts["worker"]?.history.periods.last?.peaks.contains(500) == true)
  }

  @Test(
    "a Prometheus that does not answer: the tick goes on, the floor is off with a warning, and nothing scales"
  )
  func deadPrometheusHistory() async throws {
    let port = try freePort()
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .value(10))],
      yaml: prometheusHistoryPolicy(url: "http://127.0.0.1:\(port)"))
    await harness.tick(0)
    await harness.tick(600)
    #expect(await harness.backend.applied.isEmpty)
    let records = harness.records()
    #expect(records.map { $0["event"] as? String } == ["warning"])
    #expect((records.first?["detail"] as? String)?.contains("covers 0s of the day") == true)
    #expect(await harness.controller.lastTick == Date(timeIntervalSince1970: 1_700_000_600))
  }

  @Test("a history file that is not there: logged, and the floor is off with a warning record")
  func missingHistoryFile() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(10))], yaml: Self.yaml)
    await harness.tick(0)
    #expect(await harness.backend.applied.isEmpty)
    let warning = try #require(harness.records().first)
    #expect(warning["event"] as? String == "warning" && warning["reason"] as? String == "predictive_floor")
    #expect((warning["detail"] as? String)?.contains("covers 0s of the day") == true)
  }
}

@Suite("Controller: predictive floor from a real Prometheus")
struct PredictivePrometheusTests {
  @Test("history: prometheus reads the signal's own query over the history kept, from a real Prometheus")
  func historyFromPrometheus() async throws {
    // Yesterday a minute at a time, written into Prometheus's database before it starts: 10
    // queued, and 100 from a minute past this time of day for 45 minutes.
    let now = (Date().timeIntervalSince1970 / 60).rounded(.down) * 60
    var history = "# TYPE queue_depth gauge\n"
    for minute in stride(from: now - 86_400, to: now, by: 60) {
      let busy = minute >= now - 86_400 + 60 && minute < now - 86_400 + 45 * 60
      history += "queue_depth \(busy ? 100 : 10) \(Int(minute))\n"
    }
    history += "# EOF\n"
    let server = try PrometheusServer(history: history)
    #expect(await server.ready())
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .value(10))],
      yaml: prometheusHistoryPolicy(url: server.url))
    await harness.tickWithHistory(now - 1_700_000_000)
    #expect(await harness.backend.applied.map(\.to) == [8])
    let up = try #require(harness.records().last)
    #expect(up["event"] as? String == "scale_up" && up["reason"] as? String == "predictive_floor")
    let forecast = try #require(up["forecast"] as? [String: Any])
    #expect(forecast["forecast"] as? Double == 100)
    #expect(forecast["source"] as? String == "from Prometheus and what it sees")
  }
}

@Suite("Controller: rate-limit shares")
struct ShareControllerTests {
  /// A worker on one provider; `autoscaling` is its flow mapping, where given.
  static func yaml(requestsPerMinute: Int = 600, autoscaling: String? = nil) -> String {
    """
    providers:
      llm: {requests_per_minute: \(requestsPerMinute)}
    processes:
      worker:
        scaling: {metric: queue, target: 10, min: 1, max: 8}
        rate_limit: {provider: llm, requests_per_minute_per_replica: 100}
    """ + (autoscaling.map { "\nautoscaling:\n  worker: \($0)" } ?? "")
  }

  @Test("the share file follows the count, and a share the backend refused is offered again")
  func shareFileAndRetry() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(10))], yaml: Self.yaml())
    await harness.backend.refuseShares(1)
    await harness.tick(0)
    let file = harness.folder.appendingPathComponent("shares/worker.json")
    let first = try JSONDecoder().decode(WorkerShare.self, from: Data(contentsOf: file))
    #expect(first.replicas == 1 && first.requestsPerMinute == 480)
    #expect(await harness.backend.published.isEmpty)
    await harness.tick(15)
    #expect(await harness.backend.published.map(\.replicas) == [1])
    // 40 queued at 10 a replica: 4 replicas, and each one's share falls to 120 a minute.
    harness.signals["queue"]?.set(.value(40))
    await harness.tick(30)
    let second = try JSONDecoder().decode(WorkerShare.self, from: Data(contentsOf: file))
    #expect(second.replicas == 4 && second.requestsPerMinute == 120)
    #expect(await harness.backend.published.map(\.replicas) == [1, 4])
    #expect(await harness.controller.shares["worker"] == second)
  }

  @Test(
    "a share file that cannot be written holds the scale-up: a blocked record, /healthz's problem, nothing applied; once it can be written, the scale-up goes ahead"
  )
  func unwritableShareFile() async throws {
    let harness = try ControllerHarness(signals: [FakeSignal("queue", .value(40))], yaml: Self.yaml())
    // A file where the shares folder should be: no share can be written, even by root.
    let folder = harness.folder.appendingPathComponent("shares")
    try Data().write(to: folder)
    await harness.tick(0)
    #expect(await harness.backend.applied.isEmpty)
    #expect(await harness.controller.shares.isEmpty)
    let held = try #require(harness.records().last)
    #expect(held["event"] as? String == "blocked" && held["reason"] as? String == "share_unpublished")
    #expect(held["to"] as? Int == 4 && held["from"] as? Int == 1)
    #expect((held["detail"] as? String)?.contains("could not be published") == true)
    #expect(!harness.records().contains { $0["event"] as? String == "scale_up" })
    #expect(
      (await harness.controller.writeFailure)?.contains("cannot publish the rate-limit share of worker")
        == true)
    try FileManager.default.removeItem(at: folder)
    await harness.tick(15)
    #expect(await harness.backend.applied.map(\.to) == [4])
    #expect(await harness.controller.writeFailure == nil)
    let share = try JSONDecoder().decode(
      WorkerShare.self, from: Data(contentsOf: folder.appendingPathComponent("worker.json")))
    #expect(share.replicas == 4)
  }

  @Test("a share the backend refuses holds the scale-up too; a scale-down goes ahead")
  func refusedShareHoldsScaleUp() async throws {
    let harness = try ControllerHarness(
      signals: [FakeSignal("queue", .value(40))], counts: ["worker": 6],
      yaml: Self.yaml(requestsPerMinute: 1200, autoscaling: "{scale_down: {stabilization_window: 0s}}"))
    await harness.backend.refuseShares(1)
    // 40 queued: 4 replicas, a scale-down from 6, which goes ahead though the share was refused.
    await harness.tick(0)
    #expect(await harness.backend.applied.map(\.to) == [4])
    harness.signals["queue"]?.set(.value(80))
    await harness.backend.refuseShares(1)
    await harness.tick(15)
    #expect(await harness.backend.applied.map(\.to) == [4])
    #expect(harness.records().last?["reason"] as? String == "share_unpublished")
    await harness.tick(30)
    #expect(await harness.backend.applied.map(\.to) == [4, 8])
  }
}
