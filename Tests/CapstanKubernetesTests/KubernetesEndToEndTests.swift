import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A real `capstan run` against the test API server: the binary, its kubeconfig, its audit log.
@Suite("capstan run on Kubernetes, end to end", .serialized)
struct KubernetesEndToEndTests {
  struct Cluster {
    let server: KubernetesAPIServer
    let folder: URL
    var spool: URL { folder.appendingPathComponent("spool") }

    init() async throws {
      server = try KubernetesAPIServer()
      guard await server.ready() else {
        throw KubernetesAPIServer.Failure(description: "API server did not start")
      }
      folder = server.folder
      try FileManager.default.createDirectory(at: spool, withIntermediateDirectories: true)
      try await server.setTokens(["token-a": "capstan-a", "token-b": "capstan-b", "admin-token": "admin"])
      try await server.addWorkload(namespace: "ai", name: "worker", replicas: 1)
    }

    /// A policy for one Capstan, with its own token file; leader election when asked; more for
    /// the process (cost) and its policy (a budget) where given.
    func policy(
      _ name: String, token: String, leaderElection: Bool = false, process: String = "",
      autoscaling: String = ""
    ) throws -> URL {
      let tokenFile = folder.appendingPathComponent("\(name).token")
      try "\(token)\n".write(to: tokenFile, atomically: true, encoding: .utf8)
      try server.kubeconfig(user: "tokenFile: \(tokenFile.path)", namespace: "ai")
        .write(to: folder.appendingPathComponent("\(name).kubeconfig"), atomically: true, encoding: .utf8)
      let election =
        leaderElection
        ? "\n  leader_election: {lease_duration: 3s, renew_deadline: 2s, retry_period: 500ms}" : ""
      let yaml = """
        controller: {interval: 1s}
        backend: kubernetes
        kubernetes:
          kubeconfig: \(name).kubeconfig\(election)
        signals:
          queue_depth:
            directory: {path: spool, glob: "*.job"}
        processes:
          worker:
            class: batch
            scaling: {metric: queue_depth, target: 5, min: 1, max: 8}\(process)
        autoscaling:
          worker:
            scale_up: {stabilization_window: 0s}
            scale_down: {stabilization_window: 2s}\(autoscaling)
        """
      let url = folder.appendingPathComponent("\(name).yaml")
      try yaml.write(to: url, atomically: true, encoding: .utf8)
      return url
    }

    func jobs(_ count: Int) throws {
      for item in try FileManager.default.contentsOfDirectory(atPath: spool.path) {
        try FileManager.default.removeItem(at: spool.appendingPathComponent(item))
      }
      for index in 0..<count {
        _ = FileManager.default.createFile(
          atPath: spool.appendingPathComponent("\(index).job").path, contents: nil)
      }
    }

    func replicas() async -> Int? { try? await server.replicas("Deployment", named: "worker") }

    func scaleWrites() async throws -> [KubernetesAPIServer.Request] {
      try await server.requests().filter { $0.method == "PUT" && $0.path.hasSuffix("/worker/scale") }
    }
  }

  /// Runs the binary to its end; returns its exit status and everything it printed.
  func capstan(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = try CapstanBinary.url()
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    while process.isRunning { usleep(10_000) }
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
  }

  @Test("validate names the workload; run refuses a kubeconfig it cannot use, saying why, before acting")
  func configurationErrors() async throws {
    let cluster = try await Cluster()
    let policy = try cluster.policy("a", token: "token-a")
    let validated = try capstan(["validate", policy.path])
    #expect(validated.status == 0)
    #expect(validated.output.contains("; scales deployment/worker"))

    try "current-context: gone\n".write(
      to: cluster.folder.appendingPathComponent("a.kubeconfig"), atomically: true, encoding: .utf8)
    let refused = try capstan([
      "run", policy.path, "--state-dir", cluster.folder.appendingPathComponent("s").path,
    ])
    #expect(refused.status == 1)
    #expect(
      refused.output.contains(
        "capstan run: error: kubeconfig \(cluster.folder.path)/a.kubeconfig has no context 'gone'"))
    #expect(try await cluster.server.requests().isEmpty)
  }

  @Test("record writes each workload's replicas and ready replicas, and only reads")
  func recordReadyCounts() async throws {
    let cluster = try await Cluster()
    // 8 asked for, 4 ready so far.
    try await cluster.server.addWorkload(namespace: "ai", name: "worker", replicas: 8, ready: 4)
    try cluster.jobs(3)
    let policy = try cluster.policy("a", token: "token-a")
    let out = cluster.folder.appendingPathComponent("rec.csv")
    let recorded = try capstan([
      "record", policy.path, "--out", out.path, "--duration", "2s", "--interval", "1s",
    ])
    #expect(recorded.status == 0, "\(recorded.output)")
    let rows = try String(contentsOf: out, encoding: .utf8).split(separator: "\n")
    #expect(rows.first == "timestamp,queue_depth,worker.replicas,worker.ready")
    #expect(rows.count >= 2)
    #expect(rows.dropFirst().allSatisfy { $0.hasSuffix(",3,8,4") })
    #expect(try await cluster.server.requests().allSatisfy { $0.method == "GET" })
  }

  @Test("--audit-log -: whole JSON records on standard output, logs on standard error")
  func auditOnStandardOutput() async throws {
    let cluster = try await Cluster()
    try cluster.jobs(12)
    let process = Process()
    process.executableURL = try CapstanBinary.url()
    process.arguments = [
      "run", try cluster.policy("a", token: "token-a").path, "--audit-log", "-", "--listen", "127.0.0.1:0",
      "--state-dir", cluster.folder.appendingPathComponent("state").path,
    ]
    process.environment = ProcessInfo.processInfo.environment.merging(["CAPSTAN_LOG_LEVEL": "info"]) { $1 }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    #expect(await eventually(timeout: 15) { await cluster.replicas() == 3 })
    kill(process.processIdentifier, SIGTERM)
    let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    while process.isRunning { usleep(10_000) }
    #expect(process.terminationStatus == 0)
    let lines = stdout.split(separator: "\n")
    #expect(!lines.isEmpty)
    let records = lines.compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    #expect(records.count == lines.count, "standard output holds something other than audit records")
    #expect(records.contains { $0["event"] as? String == "scale_up" && $0["to"] as? Int == 3 })
    #expect(stderr.contains("capstan running"))
    #expect(
      !FileManager.default.fileExists(atPath: cluster.folder.appendingPathComponent("state/audit.jsonl").path)
    )
  }

  @Test("scale up and down with Events; a person's kubectl scale is adopted and reported")
  func scaleUpAndDown() async throws {
    let cluster = try await Cluster()
    let capstan = try RunningCapstan(
      policy: try cluster.policy("a", token: "token-a"),
      stateDirectory: cluster.folder.appendingPathComponent("state"))
    try cluster.jobs(20)
    #expect(await eventually(timeout: 15) { await cluster.replicas() == 4 }, "\(capstan.log)")
    #expect(capstan.records(event: "scale_up").first?["to"] as? Int == 4)

    // kubectl scale deployment/worker --replicas=8
    try await cluster.server.api(
      "PUT", "/apis/apps/v1/namespaces/ai/deployments/worker/scale", token: "admin-token",
      body:
        #"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"worker"},"spec":{"replicas":8}}"#)
    #expect(await eventually(timeout: 15) { !capstan.records(event: "external_change").isEmpty })
    let change = capstan.records(event: "external_change").first
    #expect(change?["from"] as? Int == 4)
    #expect(change?["to"] as? Int == 8)

    try cluster.jobs(0)
    #expect(await eventually(timeout: 20) { await cluster.replicas() == 1 }, "\(capstan.log)")
    var events: [[String: Any]] = []
    _ = await eventually {
      events = (try? await cluster.server.objects().filter { $0["kind"] as? String == "Event" }) ?? []
      return events.contains { ($0["message"] as? String)?.hasPrefix("New size: 1;") == true }
    }
    #expect(
      events.contains {
        ($0["message"] as? String)?.hasPrefix("New size: 4; reason: target_tracking") == true
      })
    #expect(events.allSatisfy { $0["reason"] as? String == "SuccessfulRescale" })
    #expect(events.contains { ($0["message"] as? String)?.hasPrefix("New size: 1;") == true })
    let writes = try await cluster.scaleWrites().filter { $0.user != "admin" }
    #expect(writes.count >= 2)
    #expect(writes.allSatisfy { $0.user == "capstan-a" && $0.status == 200 })
    #expect(!capstan.log.contains("token-a"), "the token appeared in the log")
    #expect(!(try String(contentsOf: capstan.auditLog, encoding: .utf8)).contains("token-a"))

    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    #expect(await cluster.replicas() == 1, "stopping Capstan must leave the workload as it is")
  }

  @Test("two variants as two Deployments: the cheap one fills first and is kept longest")
  func variants() async throws {
    let cluster = try await Cluster()
    try await cluster.server.addWorkload(namespace: "ai", name: "infer-fast", replicas: 0)
    try await cluster.server.addWorkload(namespace: "ai", name: "infer-cheap", replicas: 1)
    // The kubeconfig and token the cluster's own policy writes, then a policy of variants.
    _ = try cluster.policy("a", token: "token-a")
    let policy = cluster.folder.appendingPathComponent("variants.yaml")
    try """
    controller: {interval: 1s}
    backend: kubernetes
    kubernetes: {kubeconfig: a.kubeconfig}
    signals:
      queue_depth: {directory: {path: spool, glob: "*.job"}}
    processes:
      infer:
        class: batch
        scaling: {metric: queue_depth, target: 5, min: 1, max: 8}
        variants:
          fast: {cost_per_hour_usd: 2, capacity: 2, max: 2, kubernetes: {name: infer-fast}}
          cheap: {cost_per_hour_usd: 0.5, capacity: 1, max: 3, kubernetes: {name: infer-cheap}}
    autoscaling:
      infer:
        scale_up: {stabilization_window: 0s}
        scale_down: {stabilization_window: 2s}
    """.write(to: policy, atomically: true, encoding: .utf8)
    let capstan = try RunningCapstan(
      policy: policy, stateDirectory: cluster.folder.appendingPathComponent("state"))
    func mix() async -> [Int?] {
      [
        try? await cluster.server.replicas("Deployment", named: "infer-cheap"),
        try? await cluster.server.replicas("Deployment", named: "infer-fast"),
      ]
    }
    try cluster.jobs(35)
    #expect(await eventually(timeout: 30) { await mix() == [3, 2] }, "\(capstan.log)")
    #expect(capstan.records(event: "scale_up").first?["process"] as? String == "infer.cheap")
    // Emptied at once (a new spool), so no tick reads a queue half drained.
    try FileManager.default.moveItem(at: cluster.spool, to: cluster.folder.appendingPathComponent("done"))
    try FileManager.default.createDirectory(at: cluster.spool, withIntermediateDirectories: true)
    #expect(await eventually(timeout: 30) { await mix() == [1, 0] }, "\(capstan.log)")
    let downs = capstan.records(event: "scale_down").compactMap { $0["process"] as? String }
    #expect(downs.first == "infer.fast" && downs.last == "infer.cheap", "\(downs)")
    // The untouched Deployment of the cluster's fixture is not Capstan's.
    #expect(await cluster.replicas() == 1)
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
  }

  @Test("a rate-limited API is waited out, not hammered; an expired token is read again")
  func rateLimitAndToken() async throws {
    let cluster = try await Cluster()
    let capstan = try RunningCapstan(
      policy: try cluster.policy("a", token: "token-a"),
      stateDirectory: cluster.folder.appendingPathComponent("state"))
    #expect(await eventually(timeout: 10) { await capstan.get("/healthz")?.status == 200 })

    // Every scaling call refused, the watch included: it is cut, and asked for again.
    try await cluster.server.setFaults([
      .init(path: "(/scale|/deployments)$", status: 429, retryAfter: 3, count: 1000)
    ])
    let limited = Date().timeIntervalSince1970
    try await cluster.server.dropWatches()
    func refused() async throws -> [KubernetesAPIServer.Request] {
      try await cluster.server.requests().filter {
        $0.time > limited && ($0.path.hasSuffix("/scale") || $0.path.hasSuffix("/deployments"))
      }
    }
    // At least 6 s of refusals, and long enough for a starved machine to ask again.
    try await Task.sleep(nanoseconds: 6_000_000_000)
    #expect(
      await eventually(timeout: 30) { (try? await refused().isEmpty) == false },
      "the watch was not asked for again")
    let refusing = Date().timeIntervalSince1970 - limited
    try await cluster.server.setFaults([])
    let during = try await refused()
    // With Retry-After: 3 a try goes at most every 3 s; a client that ignored it would send one
    // or more a second.
    #expect(Double(during.count) <= 1 + refusing / 3, "\(during.map(\.time)) in \(refusing) s")
    #expect(during.allSatisfy { $0.status == 429 })
    for (earlier, later) in zip(during, during.dropFirst()) { #expect(later.time - earlier.time >= 2.9) }

    // The token rotates: the old one is refused, the file holds the new one.
    try await cluster.server.setTokens(["token-a2": "capstan-a"])
    try "token-a2\n".write(
      to: cluster.folder.appendingPathComponent("a.token"), atomically: true, encoding: .utf8)
    try cluster.jobs(12)
    #expect(await eventually(timeout: 15) { await cluster.replicas() == 3 }, "\(capstan.log)")
    let statuses = try await cluster.server.requests().map(\.status)
    #expect(statuses.contains(401))
    #expect(capstan.log.contains("the API server refused the token; reading it again"))
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
  }

  @Test(
    "a budget freeze survives a rollout: the new leader, with a fresh state directory, reads the state from the cluster"
  )
  func freezeSurvivesRollout() async throws {
    let cluster = try await Cluster()
    // $360/h per replica against a $0.05 day: frozen within a second of spend.
    let costly = "\n    cost_per_hour_usd: 360"
    let budget =
      "\n    cost_circuit_breaker: {daily_budget_usd: 0.05, alert_threshold: 0.5, action_threshold: 0.9}"
    let old = try RunningCapstan(
      policy: try cluster.policy(
        "a", token: "token-a", leaderElection: true, process: costly, autoscaling: budget),
      stateDirectory: cluster.folder.appendingPathComponent("pod-1"))
    #expect(await eventually(timeout: 15) { !old.records(event: "budget_freeze").isEmpty }, "\(old.log)")
    // The state the leader wrote is in the cluster.
    #expect(
      await eventually(timeout: 5) {
        let map = try? await cluster.server.object("ConfigMap", named: "capstan-state")
        return ((map?["data"] as? [String: Any])?["state.json"] as? String)?.contains("frozen") == true
      })

    // The rollout: the old pod stops, a new one starts with an empty state directory.
    old.signal(SIGTERM)
    #expect(await old.waitForExit() == 0)
    try cluster.jobs(12)  // 3 replicas wanted
    let new = try RunningCapstan(
      policy: try cluster.policy(
        "b", token: "token-b", leaderElection: true, process: costly, autoscaling: budget),
      stateDirectory: cluster.folder.appendingPathComponent("pod-2"))
    #expect(
      await eventually(timeout: 15) {
        new.records(event: "blocked").contains { $0["reason"] as? String == "budget_frozen" }
      }, "\(new.log)")
    #expect(new.records(event: "budget_freeze").isEmpty, "the freeze was not lifted and given again")
    #expect(new.log.contains("took the state the last leader left"))
    #expect(await cluster.replicas() == 1)
    #expect(try await cluster.scaleWrites().isEmpty)
    new.signal(SIGTERM)
    #expect(await new.waitForExit() == 0)
  }

  @Test("a state ConfigMap the API refuses stops all acting, and /healthz says why; allowed again, it acts")
  func stateConfigMapRefused() async throws {
    let cluster = try await Cluster()
    // The Role without configmaps: the first write of the state is refused.
    try await cluster.server.forbid(["capstan-a": ["create configmaps", "update configmaps"]])
    try cluster.jobs(20)
    let capstan = try RunningCapstan(
      policy: try cluster.policy("a", token: "token-a", leaderElection: true),
      stateDirectory: cluster.folder.appendingPathComponent("s"))
    var last = ""
    let refused = await eventually(timeout: 15) {
      guard let health = await capstan.get("/healthz") else { return false }
      last = health.body
      return health.status == 503 && health.body.contains(#""status":"not_acting""#)
        && health.body.contains(#"cannot save state to configmap ai\/capstan-state"#)
    }
    #expect(refused, "\(last)")
    #expect(try await cluster.scaleWrites().isEmpty)
    #expect(await cluster.replicas() == 1)

    try await cluster.server.forbid([:])
    #expect(await eventually(timeout: 15) { await cluster.replicas() == 4 }, "\(capstan.log)")
    #expect(await eventually(timeout: 10) { await capstan.get("/healthz")?.status == 200 })
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
  }

  @Test("two Capstans, one leader; the leader killed, the other takes over within the lease duration")
  func leaderElection() async throws {
    let cluster = try await Cluster()
    let a = try RunningCapstan(
      policy: try cluster.policy("a", token: "token-a", leaderElection: true),
      stateDirectory: cluster.folder.appendingPathComponent("state-a"))
    #expect(await eventually(timeout: 10) { await a.metric("capstan_leader") == 1 }, "\(a.log)")
    let b = try RunningCapstan(
      policy: try cluster.policy("b", token: "token-b", leaderElection: true),
      stateDirectory: cluster.folder.appendingPathComponent("state-b"))
    #expect(await eventually(timeout: 10) { await b.metric("capstan_leader") == 0 }, "\(b.log)")
    #expect(await eventually(timeout: 10) { await b.get("/healthz")?.status == 200 })
    let health = await b.get("/healthz")
    #expect(health?.body.contains(#""leader":false"#) == true)
    #expect(health?.body.contains(#""leader_identity":""#) == true)

    try cluster.jobs(20)
    #expect(await eventually(timeout: 15) { await cluster.replicas() == 4 })
    // b decided the same, and wrote nothing: not to the workload, not to its audit log.
    try await Task.sleep(nanoseconds: 2_000_000_000)
    #expect(try await cluster.scaleWrites().allSatisfy { $0.user == "capstan-a" })
    #expect(b.records(event: "scale_up").isEmpty)
    #expect(!a.records(event: "leader_elected").isEmpty)

    // The API server rate-limits scaling calls: the leader keeps its lease all the same.
    try await cluster.server.setFaults([
      .init(path: "(/scale|/deployments)$", status: 429, retryAfter: 3, count: 1000)
    ])
    try await cluster.server.dropWatches()
    try await Task.sleep(nanoseconds: 4_000_000_000)
    try await cluster.server.setFaults([])
    #expect(a.records(event: "leader_lost").isEmpty, "\(a.log)")
    #expect(await a.metric("capstan_leader") == 1)

    kill(a.process.processIdentifier, SIGKILL)
    let killed = Date()
    #expect(await eventually(timeout: 10) { await b.metric("capstan_leader") == 1 }, "\(b.log)")
    try cluster.jobs(35)
    #expect(await eventually(timeout: 15) { await cluster.replicas() == 7 }, "\(b.log)")
    let writes = try await cluster.scaleWrites()
    #expect(writes.last?.user == "capstan-b")
    let firstByB = try #require(writes.firstIndex { $0.user == "capstan-b" })
    #expect(writes[firstByB...].allSatisfy { $0.user == "capstan-b" })
    #expect(
      writes[..<firstByB].allSatisfy { $0.user == "capstan-a" && $0.time < killed.timeIntervalSince1970 })
    #expect(b.records(event: "leader_elected").count == 1)
    let lease = try await cluster.server.object("Lease", named: "capstan")
    let holder = (lease?["spec"] as? [String: Any])?["holderIdentity"] as? String
    #expect(holder?.isEmpty == false)
    #expect(await b.get("/healthz")?.body.contains(#""leader_identity":"\#(holder ?? "")""#) == true)

    // A leader stopped cleanly gives the lease up.
    b.signal(SIGTERM)
    #expect(await b.waitForExit() == 0)
    let released = try await cluster.server.object("Lease", named: "capstan")
    #expect((released?["spec"] as? [String: Any])?["holderIdentity"] as? String == "")
  }
}

/// `dashboards/capstan.json` queries only what `capstan run` exports, with the labels it uses.
@Suite("Grafana dashboard", .serialized)
struct DashboardTests {
  static let dashboard = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("dashboards/capstan.json")

  /// Every metric name a scrape holds, with the label names it carries.
  static func exported(_ body: String) -> [String: Set<String>] {
    var metrics: [String: Set<String>] = [:]
    for line in body.split(separator: "\n") where !line.hasPrefix("#") {
      let name = String(line.prefix { $0 != "{" && $0 != " " })
      var labels = metrics[name] ?? []
      if let open = line.firstIndex(of: "{"), let close = line.firstIndex(of: "}") {
        for pair in line[line.index(after: open)..<close].split(separator: ",") {
          labels.insert(String(pair.prefix { $0 != "=" }))
        }
      }
      metrics[name] = labels
    }
    return metrics
  }

  static let alerts = dashboard.deletingLastPathComponent().appendingPathComponent("alerts.yaml")

  /// The names of the metrics the dashboard's queries and the alerting rules read.
  static func queried() throws -> Set<String> {
    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.dashboard)) as? [String: Any]
    let panels = object?["panels"] as? [[String: Any]] ?? []
    var exprs = panels.flatMap {
      ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String }
    }
    let rules = try String(contentsOf: alerts, encoding: .utf8)
    exprs += rules.split(separator: "\n").filter {
      $0.trimmingCharacters(in: .whitespaces).hasPrefix("expr:")
    }
    .map(String.init)
    #expect(exprs.count >= 15, "the dashboard's queries and the rules' expressions are read")
    return Set(
      exprs.flatMap { $0.matches(of: #/capstan_[a-z_]+/#).map { String($0.output) } }.map {
        // A histogram's series are named by its buckets, sum and count.
        $0.hasSuffix("_bucket") ? String($0.dropLast("_bucket".count)) : $0
      })
  }

  @Test(
    "the first scrape of a plain run holds every metric the dashboard and the alerting rules read, the counters at 0 for every label value the policy can give them"
  )
  func firstScrape() async throws {
    let folder = try scratchDirectory("first-scrape")
    defer { try? FileManager.default.removeItem(at: folder) }
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("spool"), withIntermediateDirectories: true)
    let policy = folder.appendingPathComponent("policy.yaml")
    try """
    signals:
      queue_depth: {directory: {path: \(folder.path)/spool, glob: "*.job"}}
    processes:
      worker:
        class: batch
        cost_per_hour_usd: 0.5
        scaling: {metric: queue_depth, target: 5, min: 0, max: 4}
        local: {command: [sleep, "3600"]}
    autoscaling:
      worker: {cost_circuit_breaker: {daily_budget_usd: 10}}
    """.write(to: policy, atomically: true, encoding: .utf8)
    let capstan = try RunningCapstan(policy: policy, stateDirectory: folder.appendingPathComponent("state"))
    #expect(await eventually(timeout: 20) { await capstan.get("/healthz")?.status == 200 })
    let body = try #require(await capstan.get("/metrics")?.body)
    let scrape = Self.exported(body)
    for name in try Self.queried() {
      #expect(
        scrape[name] != nil || scrape[name + "_bucket"] != nil, "\(name) is not on the first scrape")
    }
    let lines = Set(body.split(separator: "\n").map(String.init))
    for series in [
      #"capstan_signal_errors_total{signal="queue_depth"} 0"#,
      #"capstan_scale_actions_total{process="worker",direction="up"} 0"#,
      #"capstan_scale_actions_total{process="worker",direction="down"} 0"#,
      #"capstan_blocked_total{process="worker",reason="max_instances"} 0"#,
      #"capstan_blocked_total{process="worker",reason="budget_frozen"} 0"#,
      #"capstan_backend_errors_total{process="worker"} 0"#,
      #"capstan_crash_looping_replicas{process="worker"} 0.0"#,
      #"capstan_budget_frozen{policy="worker"} 0.0"#,
      "capstan_leader 1.0",
    ] {
      #expect(lines.contains(series), "\(series) is not on the first scrape")
    }
    // No series for a ceiling the policy does not set.
    #expect(!body.contains("rate_limit_ceiling"))
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
  }

  @Test("the alerting rules pass promtool's check and its unit tests on sample series")
  func alertingRules() throws {
    for arguments in [["check", "rules", Self.alerts.path], ["test", "rules", "alerts-test.yaml"]] {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
      process.arguments = arguments
      process.currentDirectoryURL = Self.alerts.deletingLastPathComponent()
      let output = Pipe()
      process.standardOutput = output
      process.standardError = output
      try process.run()
      let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      process.waitUntilExit()
      #expect(process.terminationStatus == 0, "promtool \(arguments.joined(separator: " ")): \(text)")
      #expect(text.contains("SUCCESS"), "\(text)")
    }
  }

  @Test("every query's metric is exported, with the labels its selectors, groupings and legends use")
  func queriesMatchExports() async throws {
    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.dashboard)) as? [String: Any]
    let panels = try #require(object?["panels"] as? [[String: Any]])
    #expect(panels.count >= 8)

    // A leader with a budget, a block at max, scale actions and a signal that fails.
    let cluster = try await KubernetesEndToEndTests.Cluster()
    let policy = try cluster.policy(
      "a", token: "token-a", leaderElection: true, process: "\n    cost_per_hour_usd: 1",
      autoscaling: "\n    cost_circuit_breaker: {daily_budget_usd: 1000}")
    var text = try String(contentsOf: policy, encoding: .utf8)
    text = text.replacingOccurrences(
      of: "signals:\n", with: "signals:\n  broken:\n    directory: {path: no-such-folder}\n")
    try text.write(to: policy, atomically: true, encoding: .utf8)
    try cluster.jobs(60)
    let capstan = try RunningCapstan(
      policy: policy, stateDirectory: cluster.folder.appendingPathComponent("s"))
    // Every series the dashboard queries, so the scrape below waits for the first tick's
    // replicas and durations as well as the series that are there from the start.
    let queried = Set(
      panels.flatMap { panel in
        (panel["targets"] as? [[String: Any]] ?? []).flatMap { target in
          ((target["expr"] as? String) ?? "").matches(of: #/capstan_[a-z_]+/#).map { String($0.output) }
        }
      })
    var scrape: [String: Set<String>] = [:]
    let complete = await eventually(timeout: 60) {
      scrape = Self.exported(await capstan.get("/metrics")?.body ?? "")
      return queried.allSatisfy { scrape[$0] != nil }
    }
    #expect(complete, "missing \(queried.subtracting(scrape.keys).sorted())")

    for panel in panels {
      for target in panel["targets"] as? [[String: Any]] ?? [] {
        let expr = try #require(target["expr"] as? String)
        let names = expr.matches(of: #/capstan_[a-z_]+/#).map { String($0.output) }
        #expect(!names.isEmpty, "\(expr)")
        var labels = Set<String>()
        for name in names {
          let exportedLabels = scrape[name]
          #expect(exportedLabels != nil, "\(panel["title"] ?? ""): \(name) is not exported")
          labels.formUnion(exportedLabels ?? [])
        }
        var used = Set(expr.matches(of: #/(\w+)\s*=~?\s*"/#).map { String($0.output.1) })
        for grouping in expr.matches(of: #/by \(([^)]*)\)/#) {
          used.formUnion(
            grouping.output.1.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        let legend = target["legendFormat"] as? String ?? ""
        used.formUnion(legend.matches(of: #/\{\{(\w+)\}\}/#).map { String($0.output.1) })
        // Prometheus adds `instance`; `le` is every histogram's bucket label.
        for label in used.subtracting(["instance", "le"]) {
          #expect(
            labels.contains(label), "\(panel["title"] ?? ""): \(expr) uses '\(label)', which \(names) lacks")
        }
      }
    }
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
  }
}
