import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A worker that takes no jobs (the test owns the spool) and leaves markers: when it starts,
/// and when it sees SIGTERM.
let idleWorker = """
  trap 'echo term >> "$MARKERS/term.$CAPSTAN_REPLICA"; exit 0' TERM
  echo started >> "$MARKERS/started.$CAPSTAN_REPLICA"
  while true; do sleep 0.1; done
  """

/// A folder with a policy, a worker script, a spool and a marker folder.
struct Scenario {
  let folder: URL
  var spool: URL { folder.appendingPathComponent("spool") }
  var markers: URL { folder.appendingPathComponent("markers") }
  var policy: URL { folder.appendingPathComponent("policy.yaml") }
  var state: URL { folder.appendingPathComponent("state") }

  init(worker: String = idleWorker, extraAutoscaling: String = "", cost: String = "0.1") throws {
    folder = try scratchDirectory("run")
    // The spool is a link to a folder of jobs, so `queue` can swap in a whole new queue at once.
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("spool-empty"), withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(
      atPath: folder.appendingPathComponent("spool").path, withDestinationPath: "spool-empty")
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("markers"), withIntermediateDirectories: true)
    try writeScript(folder.appendingPathComponent("worker.sh"), worker)
    try writePolicy(max: 4, extraAutoscaling: extraAutoscaling, cost: cost)
  }

  func writePolicy(max: Int, extraAutoscaling: String = "", cost: String = "0.1") throws {
    let yaml = """
      controller:
        interval: 1s
      signals:
        queue_depth:
          directory: {path: spool, glob: "*.job"}
      processes:
        worker:
          class: batch
          cost_per_hour_usd: \(cost)
          scaling: {metric: queue_depth, target: 5, min: 0, max: \(max)}
          local:
            command: [./worker.sh]
            env: {MARKERS: \(markers.path)}
      autoscaling:
        worker:
          scale_up: {stabilization_window: 0s}
          scale_down:
            stabilization_window: 3s
            action: {drain_timeout: 5s}
      \(extraAutoscaling)
      """
    try Data(yaml.utf8).write(to: policy)
  }

  /// Replaces the queue with `count` jobs in one step: the jobs are written into a new folder
  /// and the spool's link is renamed onto it, so no tick reads a queue half written (on a
  /// loaded machine, one did, and scaled to a count between). The old folders stay until the
  /// scenario's folder goes, so a tick still listing one never finds it gone.
  func queue(_ count: Int) throws {
    let name = "spool-\(UUID().uuidString)"
    let jobs = folder.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: jobs, withIntermediateDirectories: true)
    for index in 0..<count { try Data().write(to: jobs.appendingPathComponent("\(index).job")) }
    let next = folder.appendingPathComponent("spool.next")
    try FileManager.default.createSymbolicLink(atPath: next.path, withDestinationPath: name)
    guard rename(next.path, spool.path) == 0 else {
      throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: spool.path])
    }
  }

  func markers(_ prefix: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: markers.path)) ?? []).filter {
      $0.hasPrefix(prefix)
    }.sorted()
  }

  /// Starts of every replica so far: each start appends a line to its replica's marker.
  func startCount() -> Int {
    markers("started").reduce(0) { total, name in
      let text = (try? String(contentsOf: markers.appendingPathComponent(name), encoding: .utf8)) ?? ""
      return total + text.split(separator: "\n").count
    }
  }

  func start(_ arguments: [String] = []) throws -> RunningCapstan {
    try RunningCapstan(policy: policy, stateDirectory: state, extraArguments: arguments)
  }

  /// Worker shells of this scenario. A shell's own child between its fork and the exec of
  /// `sleep` has the same command line for a moment; it is not a worker, so a process whose
  /// parent is a worker is left out (on a loaded machine that moment is long enough to be seen).
  func workersRunning() -> Int {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    let shells = Set(
      entries.filter { pid in
        guard Int(pid) != nil,
          let command = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
        else { return false }
        return command.hasPrefix("/bin/sh\0./worker.sh")
          && (try? String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8))?.contains(markers.path)
            == true
      })
    return shells.filter { pid in
      // The parent is the fourth field of /proc/PID/stat, after the command in parentheses.
      guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
      else { return true }
      let fields = stat[stat.index(after: close)...].split(separator: " ")
      return fields.count < 2 || !shells.contains(String(fields[1]))
    }.count
  }
}

@Suite("capstan run, end to end", .serialized)
struct RunEndToEndTests {
  @Test(
    "a burst scales up, an empty spool scales down after the window, drained workers see SIGTERM, SIGTERM exits 0"
  )
  func burstAndDrain() async throws {
    let scenario = try Scenario()
    let capstan = try scenario.start()
    #expect(await eventually { await capstan.get("/healthz")?.status == 200 })
    try scenario.queue(18)
    // ceil(18 / 5) = 4 replicas, at the next tick or the one after.
    #expect(await eventually(timeout: 5) { scenario.markers("started").count == 4 })
    #expect(
      await eventually { await capstan.metric(#"capstan_replicas{process="worker",state="current"}"#) == 4 })
    let up = try #require(capstan.records(event: "scale_up").first)
    #expect(up["from"] as? Int == 0 && up["to"] as? Int == 4 && up["mode"] as? String == "live")

    try scenario.queue(0)
    #expect(await eventually(timeout: 10) { scenario.markers("term").count == 4 })
    #expect(capstan.records(event: "scale_down").last?["to"] as? Int == 0)
    #expect(capstan.records(event: "blocked").contains { $0["reason"] as? String == "stabilization" })
    #expect(await capstan.metric(#"capstan_scale_actions_total{process="worker",direction="up"}"#) == 1)
    #expect(await capstan.metric(#"capstan_signal_value{signal="queue_depth"}"#) == 0)

    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("a worker that crashes is restarted")
  func crashRestart() async throws {
    let scenario = try Scenario(worker: #"echo started >> "$MARKERS/started.$CAPSTAN_REPLICA"; exit 1"#)
    let capstan = try scenario.start()
    try scenario.queue(3)
    let restarted = await eventually(timeout: 10) {
      let text =
        (try? String(contentsOf: scenario.markers.appendingPathComponent("started.0"), encoding: .utf8)) ?? ""
      return text.split(separator: "\n").count >= 3
    }
    #expect(restarted)
    #expect(capstan.log.contains("replica exited on its own: restarting"))
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("SIGHUP with a broken policy keeps the old one; with a valid one, reloads")
  func reload() async throws {
    let scenario = try Scenario()
    let capstan = try scenario.start()
    #expect(await eventually { await capstan.get("/healthz")?.status == 200 })
    try Data("processes:\n  worker:\n    scaling: {max: two}\n".utf8).write(to: scenario.policy)
    capstan.signal(SIGHUP)
    #expect(await eventually { !capstan.records(event: "policy_rejected").isEmpty })
    let rejected = try #require(capstan.records(event: "policy_rejected").first)
    #expect(
      (rejected["detail"] as? String)?.contains("policy.yaml:3:20: error: 'two' is not a whole number")
        == true)
    // The old policy still runs: a burst still scales to its max of 4.
    try scenario.queue(30)
    #expect(await eventually(timeout: 5) { scenario.markers("started").count == 4 })

    try scenario.writePolicy(max: 2)
    capstan.signal(SIGHUP)
    #expect(await eventually { !capstan.records(event: "policy_reloaded").isEmpty })
    #expect(await eventually(timeout: 5) { scenario.markers("term").count == 2 })
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("SIGHUP with a policy of absurd numbers is rejected, and the controller goes on")
  func reloadHostileNumbers() async throws {
    let scenario = try Scenario()
    let capstan = try scenario.start()
    #expect(await eventually { await capstan.get("/healthz")?.status == 200 })
    var policy = try String(contentsOf: scenario.policy, encoding: .utf8)
    policy =
      "providers:\n  o: {tokens_per_minute: 1e308}\n"
      + policy.replacingOccurrences(
        of: "cost_per_hour_usd: 0.1",
        with: "cost_per_hour_usd: 0.1\n    rate_limit: {provider: o, tokens_per_minute_per_replica: 1e-300}")
    try Data(policy.utf8).write(to: scenario.policy)
    capstan.signal(SIGHUP)
    #expect(await eventually { !capstan.records(event: "policy_rejected").isEmpty })
    #expect(await capstan.get("/healthz")?.status == 200)
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("a signal command that leaves a child holding its output neither stalls the loop nor SIGTERM")
  func stallingSignalCommand() async throws {
    let scenario = try Scenario()
    var policy = try String(contentsOf: scenario.policy, encoding: .utf8)
    policy = policy.replacingOccurrences(
      of: #"directory: {path: spool, glob: "*.job"}"#,
      with: #"command: {argv: [sh, -c, 'sleep 100004 & echo 5'], timeout: 1s}"#)
    try Data(policy.utf8).write(to: scenario.policy)
    let capstan = try scenario.start()
    // Ticks complete: healthy, and the value read (5 jobs, target 5) brought one worker.
    #expect(await eventually(timeout: 15) { await capstan.get("/healthz")?.status == 200 }, "\(capstan.log)")
    #expect(await eventually(timeout: 10) { scenario.workersRunning() == 1 })
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    let leaked = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter {
      Int($0) != nil
        && FileManager.default.contents(atPath: "/proc/\($0)/cmdline") == Data("sleep\u{0}100004\u{0}".utf8)
    }
    #expect(leaked.isEmpty)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test(
    "kill -9 stops the workers; a restart restores them at once, with the budget still frozen and the cooldown still counted"
  )
  func crashAndRestart() async throws {
    // $360/h per replica against a $0.05 day: frozen after the first second of spend.
    let scenario = try Scenario()
    try scenario.writePolicy(
      max: 4,
      extraAutoscaling: """
            cost_circuit_breaker: {daily_budget_usd: 0.05, alert_threshold: 0.5, action_threshold: 0.9}
        """, cost: "360")
    var policy = try String(contentsOf: scenario.policy, encoding: .utf8)
    policy = policy.replacingOccurrences(
      of: "scale_up: {stabilization_window: 0s}",
      with: "scale_up: {stabilization_window: 0s, action: {add_instances: 1, cooldown: 1h}}")
    try Data(policy.utf8).write(to: scenario.policy)

    let first = try scenario.start()
    try scenario.queue(10)  // wants 2; one step of 1, then the cooldown and the freeze hold it
    #expect(await eventually(timeout: 5) { scenario.markers("started").count == 1 })
    #expect(await eventually(timeout: 5) { !first.records(event: "budget_freeze").isEmpty })
    #expect(scenario.workersRunning() == 1)

    first.signal(SIGKILL)
    _ = await first.waitForExit()
    // The replica guard sees its lifeline close and drains the worker.
    #expect(await eventually(timeout: 5) { scenario.workersRunning() == 0 })
    #expect(scenario.markers("term").count == 1)

    let before = first.auditRecords().count
    let second = try scenario.start()
    // What ran before is back at once: not held by the hour's cooldown or the freeze, and not
    // someone else's change.
    #expect(await eventually(timeout: 5) { scenario.workersRunning() == 1 })
    #expect(
      await eventually(timeout: 5) {
        second.auditRecords().dropFirst(before).contains { $0["event"] as? String == "scale_up" }
      })
    // A few ticks later the second replica it wants is still held back.
    try await Task.sleep(nanoseconds: 2_500_000_000)
    let records = second.auditRecords()
    let afterRestart = records.dropFirst(before)
    let summary = afterRestart.map { "\($0["event"] ?? "") \($0["reason"] ?? "")" }
    #expect(
      afterRestart.first { $0["event"] as? String == "scale_up" }?["reason"] as? String == "restore",
      "\(summary)")
    #expect(!afterRestart.contains { $0["event"] as? String == "external_change" }, "\(summary)")
    #expect(records.filter { $0["event"] as? String == "budget_freeze" }.count == 1)
    let lastBlocked = try #require(records.last { $0["event"] as? String == "blocked" })
    #expect(lastBlocked["reason"] as? String == "cooldown", "after the restart: \(summary)")
    #expect((lastBlocked["budget"] as? [String: Any])?["state"] as? String == "frozen")
    #expect(scenario.workersRunning() == 1)
    second.signal(SIGTERM)
    #expect(await second.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("kill -9 and an immediate restart never run more than max: the last run's draining workers count")
  func restartWhileDraining() async throws {
    // Each worker takes 2 s to finish after SIGTERM, so the old ones are still draining when the
    // new Capstan starts.
    let slowDrainer = """
      trap 'echo term >> "$MARKERS/term.$CAPSTAN_REPLICA"; sleep 2; exit 0' TERM
      echo started >> "$MARKERS/started.$CAPSTAN_REPLICA"
      while true; do sleep 0.1; done
      """
    let scenario = try Scenario(worker: slowDrainer)
    try scenario.writePolicy(max: 5)
    var policy = try String(contentsOf: scenario.policy, encoding: .utf8)
    policy = policy.replacingOccurrences(of: "min: 0", with: "min: 2").replacingOccurrences(
      of: "scale_up: {stabilization_window: 0s}",
      with: "scale_up: {stabilization_window: 0s, action: {cooldown: 10m}}")
    try Data(policy.utf8).write(to: scenario.policy)

    let first = try scenario.start()
    try scenario.queue(18)  // ceil(18 / 5) = 4
    #expect(await eventually(timeout: 5) { scenario.workersRunning() == 4 })
    first.signal(SIGKILL)
    _ = await first.waitForExit()

    let second = try scenario.start()
    var most = 0
    let restored = await eventually(timeout: 15) {
      most = max(most, scenario.workersRunning())
      // Four new starts beside the four first ones, and the old ones gone.
      return scenario.startCount() == 8 && scenario.workersRunning() == 4
    }
    #expect(restored)
    #expect(most <= 5, "\(most) workers ran at once against max 5")
    // Each replica number ran once at a time: the new ones took the numbers left free.
    #expect(second.log.contains("still draining"))
    #expect(second.records(event: "external_change").isEmpty)
    second.signal(SIGTERM)
    #expect(await second.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test(
    "a child that leaves the replica's process group (setsid) is stopped with it, after kill -9 and SIGTERM")
  func setsidChildren() async throws {
    let escaper = """
      setsid sleep 100003 &
      echo started >> "$MARKERS/started.$CAPSTAN_REPLICA"
      trap 'exit 0' TERM
      while true; do sleep 0.1; done
      """
    func escaped() -> Int {
      let wanted = Data("sleep\u{0}100003\u{0}".utf8)
      let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
      return entries.filter {
        Int($0) != nil && FileManager.default.contents(atPath: "/proc/\($0)/cmdline") == wanted
      }
      .count
    }
    let scenario = try Scenario(worker: escaper)
    try scenario.queue(8)  // 2 replicas
    let first = try scenario.start()
    #expect(await eventually(timeout: 5) { escaped() == 2 })
    first.signal(SIGKILL)
    _ = await first.waitForExit()
    #expect(await eventually(timeout: 10) { escaped() == 0 && scenario.workersRunning() == 0 })

    try scenario.queue(4)  // 1 replica
    let second = try scenario.start()
    #expect(await eventually(timeout: 5) { escaped() >= 1 })
    second.signal(SIGTERM)
    #expect(await second.waitForExit() == 0)
    #expect(await eventually(timeout: 10) { escaped() == 0 })
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("an audit log that cannot be written stops all acting, and /healthz says why")
  func auditFailsClosed() async throws {
    let scenario = try Scenario()
    let capstan = try scenario.start(["--audit-log", "/dev/full"])
    try scenario.queue(18)
    var last = ""
    let unhealthy = await eventually(timeout: 10) {
      guard let health = await capstan.get("/healthz") else { return false }
      last = "\(health.status) \(health.body)"
      return health.status == 503 && health.body.contains(#""status":"not_acting""#)
        && health.body.contains("cannot write the audit log")
    }
    #expect(unhealthy, "\(last)\n\(capstan.log)")
    // A few more ticks: still nothing started.
    try await Task.sleep(nanoseconds: 2_000_000_000)
    #expect(scenario.markers("started").isEmpty)
    #expect(scenario.workersRunning() == 0)
    #expect(capstan.log.contains("not acting"))
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("a state file that is a directory is refused before anything starts")
  func stateIsDirectory() async throws {
    let scenario = try Scenario()
    try FileManager.default.createDirectory(
      at: scenario.state.appendingPathComponent("state.json"), withIntermediateDirectories: true)
    let capstan = try scenario.start()
    #expect(await capstan.waitForExit() == 1)
    #expect(capstan.log.contains("state.json is not a readable file"))
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test(
    "capstan status reads a running controller: replicas, bounds, what holds the count, signals against their target, the conditions; an unreachable one is an error that says what to do"
  )
  func status() async throws {
    let scenario = try Scenario()
    let capstan = try scenario.start()
    // 60 queued at 5 a worker: 12 wanted, max 4.
    try scenario.queue(60)
    #expect(await eventually(timeout: 10) { !capstan.records(event: "blocked").isEmpty })
    // The tick that scales reads 0 and sets 4; the next reads 4.
    var object: [String: Any]?
    #expect(
      try await eventually(timeout: 10) {
        let json = try runCapstan(["status", "--url", "127.0.0.1:\(capstan.port)", "--format", "json"])
        object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let first = (object?["processes"] as? [[String: Any]])?.first
        return first?["current"] as? Int == 4 && first?["desired"] as? Int == 4
      })
    #expect(object?["leading"] as? Bool == true && object?["last_tick"] is String)
    let worker = try #require((object?["processes"] as? [[String: Any]])?.first)
    #expect(worker["name"] as? String == "worker" && worker["min"] as? Int == 0 && worker["max"] as? Int == 4)
    #expect(worker["current"] as? Int == 4)
    let binding = try #require(worker["binding"] as? [String: Any])
    #expect(binding["reason"] as? String == "max_instances" && binding["wanted"] as? Int == 12)
    let signal = try #require((worker["signals"] as? [[String: Any]])?.first)
    #expect(signal["name"] as? String == "queue_depth" && signal["value"] as? Double == 60)
    #expect(signal["target"] as? Double == 5)
    let conditions = try #require(worker["conditions"] as? [[String: Any]])
    let limited = try #require(conditions.first { $0["type"] as? String == "ScalingLimited" })
    #expect(limited["status"] as? Bool == true && limited["reason"] as? String == "max_instances")

    let text = try runCapstan(["status", "--url", "127.0.0.1:\(capstan.port)"])
    let lines = text.stdout.split(separator: "\n").map(String.init)
    #expect(lines.count == 4, "\(text.stdout)")
    #expect(lines[1].hasPrefix("PROCESS  REPLICAS  DESIRED  READY  MIN  MAX  HELD BY"))
    #expect(lines[2].contains("max_instances (wants 12)") && lines[2].contains("queue_depth 60 (target 5)"))
    #expect(lines[3].contains("ScalingLimited True (max_instances)"))
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)

    let port = try freePort()
    let refused = try runCapstan(["status", "--url", "127.0.0.1:\(port)"])
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("cannot reach a running controller at http://127.0.0.1:\(port)"))
    #expect(refused.stderr.contains("give its --listen address with --url"))
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test("--dry-run decides and writes the audit log, and starts nothing")
  func dryRun() async throws {
    let scenario = try Scenario()
    let capstan = try scenario.start(["--dry-run"])
    try scenario.queue(12)
    #expect(await eventually(timeout: 5) { !capstan.records(event: "scale_up").isEmpty })
    let up = try #require(capstan.records(event: "scale_up").first)
    #expect(up["mode"] as? String == "dry_run" && up["to"] as? Int == 3)
    try await Task.sleep(nanoseconds: 1_500_000_000)
    #expect(scenario.markers("started").isEmpty)
    #expect(scenario.workersRunning() == 0)
    // The dry run remembers what it would have set: no second scale-up to the same count.
    #expect(capstan.records(event: "scale_up").count == 1)
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: scenario.folder)
  }

  @Test(
    "a corrupt state file, or a state directory another capstan run holds, is refused before anything starts")
  func stateDirectoryRefusals() async throws {
    let scenario = try Scenario()
    defer { try? FileManager.default.removeItem(at: scenario.folder) }
    try scenario.queue(10)
    try FileManager.default.createDirectory(at: scenario.state, withIntermediateDirectories: true)
    let stateFile = scenario.state.appendingPathComponent("state.json")
    try Data("{not json".utf8).write(to: stateFile)
    let corrupt = try scenario.start()
    #expect(await corrupt.waitForExit() == 1)
    #expect(corrupt.log.contains("\(stateFile.path) is not a state file Capstan can read"))
    #expect(corrupt.log.contains("move it aside to start afresh"))
    #expect(scenario.markers("started").isEmpty)

    try FileManager.default.removeItem(at: stateFile)
    let first = try scenario.start()
    #expect(await eventually { await first.get("/healthz")?.status == 200 })
    let second = try scenario.start()
    let status = await second.waitForExit()
    #expect(status != nil && status != 0)
    #expect(second.log.contains("another capstan run is using \(scenario.state.path)"))
    #expect(await first.get("/healthz")?.status == 200)
    first.signal(SIGTERM)
    #expect(await first.waitForExit() == 0)
  }

  @Test("a policy that cannot run live is refused with every problem at its position")
  func notRunnable() async throws {
    let folder = try scratchDirectory("run-invalid")
    defer { try? FileManager.default.removeItem(at: folder) }
    let policy = folder.appendingPathComponent("policy.yaml")
    try Data(
      """
      processes:
        worker:
          scaling: {metric: queue_depth, target: 5, min: 1, max: 4}
      """.utf8
    ).write(to: policy)
    let capstan = try RunningCapstan(policy: policy, stateDirectory: folder.appendingPathComponent("state"))
    #expect(await capstan.waitForExit() == 1)
    #expect(capstan.log.contains("policy.yaml:2:3: error: 'worker' has nothing to run"))
    #expect(capstan.log.contains("policy.yaml:3:23: error: signal 'queue_depth' has no source to read live"))
  }
}
