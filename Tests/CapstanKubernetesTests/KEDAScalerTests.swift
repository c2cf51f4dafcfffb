import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `capstan run --keda-scaler` against a client KEDA could be: Python's grpcio, with stubs
/// generated from proto/externalscaler.proto by grpcio-tools (Tests/Peers/keda-peer.py).
@Suite("KEDA external scaler, against a Python grpcio peer", .serialized)
struct KEDAScalerTests {
  static let peerScript = repositoryRoot.appendingPathComponent("Tests/Peers/keda-peer.py")

  /// Runs the peer to its end; its JSON lines, parsed.
  static func peer(_ arguments: [String]) throws -> [[String: Any]] {
    let result = try runProgram("python3", [peerScript.path] + arguments, timeout: 120)
    #expect(result.status == 0, "keda-peer \(arguments): \(result.stderr)")
    return parse(result.stdout)
  }

  static func parse(_ text: String) -> [[String: Any]] {
    text.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  /// The metric value of a GetMetrics answer.
  static func value(_ answer: [String: Any]?) -> Double? {
    ((answer?["values"] as? [[String: Any]])?.first?["metricValueFloat"] as? NSNumber)?.doubleValue
  }

  @Test(
    "KEDA's calls answer Capstan's decisions as they change; Capstan writes no /scale; a stream reports activation; an unknown process is an error status; many clients at once"
  )
  func decisionsOverGRPC() async throws {
    let cluster = try await KubernetesEndToEndTests.Cluster()
    let policy = try cluster.policy("a", token: "token-a")
    let yaml = try String(contentsOf: policy, encoding: .utf8)
      .replacingOccurrences(of: "min: 1, max: 8", with: "min: 0, max: 8")
    try yaml.write(to: policy, atomically: true, encoding: .utf8)
    try cluster.jobs(60)
    let scalerPort = try freePort()
    let address = "127.0.0.1:\(scalerPort)"
    let capstan = try RunningCapstan(
      policy: policy, stateDirectory: cluster.folder.appendingPathComponent("s"),
      extraArguments: ["--keda-scaler", address])
    let listening = await eventually(timeout: 30) { acceptsConnections(port: scalerPort) }
    try #require(listening, "\(capstan.log)")

    // A stream opened before the first decision, kept open to the end.
    let streamLog = cluster.folder.appendingPathComponent("stream.jsonl")
    _ = FileManager.default.createFile(atPath: streamLog.path, contents: nil)
    let stream = Process()
    stream.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    stream.arguments = ["python3", Self.peerScript.path, address, "stream", "worker"]
    stream.standardOutput = try FileHandle(forWritingTo: streamLog)
    try stream.run()
    defer { if stream.isRunning { kill(stream.processIdentifier, SIGKILL) } }
    func streamed() -> [[String: Any]] {
      Self.parse((try? String(contentsOf: streamLog, encoding: .utf8)) ?? "")
    }

    let spec = try Self.peer([address, "spec", "worker"]).first
    let specs = spec?["specs"] as? [[String: Any]]
    #expect(specs?.count == 1)
    #expect(specs?.first?["metricName"] as? String == "capstan-worker")
    #expect((specs?.first?["targetSizeFloat"] as? NSNumber)?.doubleValue == 1)
    #expect((specs?.first?["targetSize"] as? NSNumber)?.intValue == 1)

    // 60 jobs at 5 a replica, at most 8: Capstan decides 8 and KEDA is told 8.
    let up = await eventually(timeout: 30) { !capstan.records(event: "scale_up").isEmpty }
    try #require(up, "\(capstan.log)")
    let scaleUp = capstan.records(event: "scale_up")[0]
    #expect(scaleUp["to"] as? Int == 8)
    #expect(scaleUp["mode"] as? String == "keda")
    #expect(Self.value(try Self.peer([address, "metrics", "worker"]).first) == 8)
    #expect(try Self.peer([address, "active", "worker"]).first?["result"] as? Bool == true)
    // KEDA scales, not Capstan: the workload is where it was, and no /scale was written.
    #expect(try await cluster.scaleWrites().isEmpty)
    #expect(await cluster.replicas() == 1)

    // No jobs: Capstan decides 0, and the process is no longer active.
    try cluster.jobs(0)
    let down = await eventually(timeout: 30) {
      capstan.records(event: "scale_down").contains { $0["to"] as? Int == 0 }
    }
    try #require(down, "\(capstan.log)")
    #expect(Self.value(try Self.peer([address, "metrics", "worker"]).first) == 0)
    #expect(try Self.peer([address, "active", "worker"]).first?["result"] as? Bool == false)
    let activations = await eventually(timeout: 10) {
      streamed().compactMap { $0["result"] as? Bool }.last == false
    }
    #expect(activations, "\(streamed())")
    // The first message is the state at the time the stream opened; each later one a change.
    let results = streamed().compactMap { $0["result"] as? Bool }
    #expect(results.suffix(2) == [true, false], "\(results)")
    #expect(zip(results, results.dropFirst()).allSatisfy { $0 != $1 }, "\(results)")

    // A process the policy does not have, and a trigger that names none: error statuses that
    // say what is wrong, and the server goes on.
    let unknown = try Self.peer([address, "metrics", "nope"]).first
    #expect(unknown?["code"] as? String == "NOT_FOUND")
    let unknownDetails = unknown?["details"] as? String ?? ""
    #expect(unknownDetails.contains("'nope'") && unknownDetails.contains("worker"), "\(unknownDetails)")
    let unnamed = try Self.peer([address, "active", ""]).first
    #expect(unnamed?["code"] as? String == "INVALID_ARGUMENT")
    #expect((unnamed?["details"] as? String ?? "").contains("process"), "\(unnamed ?? [:])")

    // Many clients at once, each on a connection of its own: every call answers, the same.
    let clients = try Self.peer([address, "concurrent", "worker", "48"])
    #expect(clients.count == 48)
    #expect(
      clients.allSatisfy { $0["ok"] as? Bool == true }, "\(clients.filter { $0["ok"] as? Bool != true })")
    #expect(
      clients.allSatisfy { client in
        let answers = client["answers"] as? [[String: Any]] ?? []
        return answers.count == 3 && Self.value(answers[1]) == 0 && answers[2]["result"] as? Bool == false
      })

    // SIGTERM ends the open stream, and Capstan exits without waiting on KEDA.
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0, "\(capstan.log)")
    #expect(await eventually(timeout: 20) { !stream.isRunning })
    #expect(try await cluster.scaleWrites().isEmpty)
  }

  @Test(
    "an address already in use stops capstan run with an error that names it, not a controller KEDA cannot reach"
  )
  func addressInUse() async throws {
    let cluster = try await KubernetesEndToEndTests.Cluster()
    let policy = try cluster.policy("a", token: "token-a")
    let (taken, port) = try loopbackSocket(listen: 1)
    defer { close(taken) }
    let capstan = try RunningCapstan(
      policy: policy, stateDirectory: cluster.folder.appendingPathComponent("s"),
      extraArguments: ["--keda-scaler", "127.0.0.1:\(port)"])
    let status = await capstan.waitForExit(timeout: 30)
    #expect(status != nil && status != 0, "\(capstan.log)")
    #expect(capstan.log.contains("KEDA external scaler could not listen"), "\(capstan.log)")
    #expect(capstan.log.contains("127.0.0.1:\(port)"), "\(capstan.log)")
    #expect(try await cluster.scaleWrites().isEmpty)
  }

  @Test("--keda-scaler needs a policy on the kubernetes backend, and an address it can parse")
  func refusals() throws {
    let folder = try scratchDirectory("keda")
    let policy = folder.appendingPathComponent("local.yaml")
    try """
    signals:
      queue: {directory: {path: ., glob: "*.job"}}
    processes:
      worker:
        class: batch
        scaling: {metric: queue, target: 5, min: 1, max: 2}
        local: {command: [sleep, "60"]}
    """.write(to: policy, atomically: true, encoding: .utf8)
    let local = try runCapstan([
      "run", policy.path, "--state-dir", folder.appendingPathComponent("s").path, "--keda-scaler",
      "127.0.0.1:0",
    ])
    #expect(local.status == 1)
    #expect(local.stderr.contains("backend is not kubernetes"), "\(local.stderr)")
    let address = try runCapstan([
      "run", policy.path, "--state-dir", folder.appendingPathComponent("t").path, "--keda-scaler", "nowhere",
    ])
    #expect(address.status != 0)
    #expect(address.stderr.contains("must be HOST:PORT"), "\(address.stderr)")
  }
}
