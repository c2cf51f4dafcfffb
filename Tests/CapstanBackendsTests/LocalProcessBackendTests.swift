import CapstanCore
import CapstanRuntime
import CapstanTestKit
import Foundation
import Logging
import Testing

@testable import CapstanBackends

#if canImport(Glibc)
  import Glibc
#endif

/// A worker that records how it was started and whether it saw SIGTERM.
/// The trap comes first: a worker that says it started must already hear SIGTERM.
let workerScript = """
  trap 'echo term > "$OUT/term.$CAPSTAN_REPLICA"; exit 0' TERM
  echo "$CAPSTAN_PROCESS $CAPSTAN_REPLICA ${PORT:-none} $GREETING" > "$OUT/started.$CAPSTAN_REPLICA"
  echo "worker $CAPSTAN_REPLICA says hello"
  while true; do sleep 0.1; done
  """

struct Fixture {
  let folder: URL
  let backend: LocalProcessBackend
  let target: ScalingTarget

  init(
    script: String = workerScript, drainTimeout: TimeInterval = 5, portBase: Int? = 8100,
    restartDelay: TimeInterval = 0.1, readyPath: String? = nil, crashLoopWindow: TimeInterval = 300
  )
    throws
  {
    folder = try scratchDirectory("local-backend")
    try writeScript(folder.appendingPathComponent("worker.sh"), script)
    var configuration = LocalProcessBackend.Configuration(
      guardExecutable: try CapstanBinary.url(), baseDirectory: folder,
      logDirectory: folder.appendingPathComponent("logs"))
    configuration.firstRestartDelay = restartDelay
    configuration.maxRestartDelay = restartDelay * 4
    configuration.crashLoopRestarts = 3
    configuration.crashLoopWindow = crashLoopWindow
    backend = LocalProcessBackend(configuration: configuration, logger: Logger(label: "test"))
    let yaml = """
      processes:
        worker:
          scaling: {min: 0, max: 5}
          class: batch
          local:
            command: [./worker.sh]
            env: {OUT: \(folder.path), GREETING: hi}
            \(portBase.map { "port_base: \($0)" } ?? "")
            \(readyPath.map { "ready_path: \($0)" } ?? "")
      autoscaling:
        worker: {scale_down: {action: {drain_timeout: \(Int(drainTimeout))s}}}
      """
    target = try PolicyLoader.load(yaml: yaml, file: "p.yaml").policy.target(named: "worker")!
  }

  func scale(_ from: Int, _ to: Int) async throws {
    try await backend.apply(
      ScaleAction(
        process: "worker", from: from, to: to, reason: .targetTracking, drainTimeout: target.drainTimeout),
      to: target)
  }

  func exists(_ name: String) -> Bool {
    FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path)
  }

  func read(_ name: String) -> String {
    (try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8))?.trimmingCharacters(
      in: .newlines) ?? ""
  }

  func cleanUp() async {
    await backend.shutdown()
    try? FileManager.default.removeItem(at: folder)
  }
}

@Suite("Local process backend", .serialized)
struct LocalProcessBackendTests {
  @Test("replicas start with their index, port and environment, logging to the state directory")
  func start() async throws {
    let fixture = try Fixture()
    try await fixture.scale(0, 3)
    #expect(
      await eventually {
        fixture.exists("started.0") && fixture.exists("started.1") && fixture.exists("started.2")
      })
    #expect(fixture.read("started.0") == "worker 0 8100 hi")
    #expect(fixture.read("started.2") == "worker 2 8102 hi")
    #expect(try await fixture.backend.status(of: fixture.target) == ReplicaStatus(current: 3, ready: 3))
    #expect(await eventually { fixture.read("logs/worker.1.log").contains("worker 1 says hello") })
    await fixture.cleanUp()
  }

  @Test("with ready_path, a replica is starting until its port answers 2xx there, and ready after")
  func readyPath() async throws {
    // Listens only once the test says so, as a model server does once its weights are in.
    let script = """
      while [ ! -e "$OUT/go" ]; do sleep 0.05; done
      exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$OUT"
      """
    let fixture = try Fixture(script: script, portBase: try freePort(), readyPath: "/")
    try await fixture.scale(0, 1)
    for _ in 0..<3 {
      #expect(try await fixture.backend.status(of: fixture.target) == ReplicaStatus(current: 1, ready: 0))
      try await Task.sleep(nanoseconds: 100_000_000)
    }
    try Data().write(to: fixture.folder.appendingPathComponent("go"))
    #expect(
      await eventually {
        (try? await fixture.backend.status(of: fixture.target)) == ReplicaStatus(current: 1, ready: 1)
      })
    await fixture.cleanUp()
  }

  @Test("with ready_path, a replica that listens but answers it with a 404 is never ready")
  func readyPathRefusedByServer() async throws {
    let script = #"exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$OUT""#
    let fixture = try Fixture(script: script, portBase: try freePort(), readyPath: "/absent")
    try await fixture.scale(0, 1)
    // Listening: the ready path has been asked and answered (404) at least once.
    let port = try #require(fixture.target.local?.portBase)
    #expect(await eventually { acceptsConnections(port: port) })
    for _ in 0..<3 {
      #expect(try await fixture.backend.status(of: fixture.target) == ReplicaStatus(current: 1, ready: 0))
    }
    #expect(await eventually { fixture.read("logs/worker.0.log").contains("GET /absent") })
    await fixture.cleanUp()
  }

  @Test("scale-down drains the newest replicas: SIGTERM first, counted as draining until gone")
  func drain() async throws {
    let fixture = try Fixture()
    try await fixture.scale(0, 3)
    // All three running: a replica drained before its guard is up never starts at all.
    #expect(await eventually { (0..<3).allSatisfy { fixture.exists("started.\($0)") } })
    try await fixture.scale(3, 1)
    let status = try await fixture.backend.status(of: fixture.target)
    #expect(status.current == 1 && status.ready == 1)
    #expect(await eventually { fixture.exists("term.2") && fixture.exists("term.1") })
    #expect(!fixture.exists("term.0"))
    #expect(
      await eventually {
        (try? await fixture.backend.status(of: fixture.target)) == ReplicaStatus(current: 1, ready: 1)
      })
    await fixture.cleanUp()
  }

  @Test("a replica that ignores SIGTERM is killed at the drain timeout")
  func drainTimeout() async throws {
    let stubborn = """
      trap '' TERM
      echo $$ > "$OUT/pid.$CAPSTAN_REPLICA"
      while true; do sleep 0.1; done
      """
    let fixture = try Fixture(script: stubborn, drainTimeout: 1)
    try await fixture.scale(0, 1)
    #expect(await eventually { fixture.exists("pid.0") })
    let pid = Int32(fixture.read("pid.0"))!
    let start = Date()
    try await fixture.scale(1, 0)
    #expect(await eventually(timeout: 8) { kill(pid, 0) != 0 })
    #expect(Date().timeIntervalSince(start) >= 0.9)
    await fixture.cleanUp()
  }

  @Test(
    "a replica that exits on its own is restarted, and one that keeps exiting is crash-looping and not ready")
  func restarts() async throws {
    let crashing = """
      echo x >> "$OUT/starts.$CAPSTAN_REPLICA"
      exit 3
      """
    let fixture = try Fixture(script: crashing)
    try await fixture.scale(0, 1)
    #expect(await eventually { fixture.read("starts.0").split(separator: "\n").count >= 2 })
    #expect(await eventually { await fixture.backend.crashLooping("worker") == [0] })
    let status = try await fixture.backend.status(of: fixture.target)
    #expect(status.current == 1 && status.ready == 0)
    await fixture.cleanUp()
  }

  @Test("a crash-looping replica that then stays up a whole window is ready again")
  func recoversFromCrashLoop() async throws {
    // Three quick exits, then it serves.
    let recovering = """
      echo x >> "$OUT/starts.$CAPSTAN_REPLICA"
      if [ "$(wc -l < "$OUT/starts.$CAPSTAN_REPLICA")" -le 3 ]; then exit 3; fi
      exec sleep 600
      """
    let fixture = try Fixture(script: recovering, crashLoopWindow: 3)
    try await fixture.scale(0, 1)
    #expect(await eventually { await fixture.backend.crashLooping("worker") == [0] })
    #expect(try await fixture.backend.status(of: fixture.target).ready == 0)
    #expect(await eventually { fixture.read("starts.0").split(separator: "\n").count == 4 })
    // Up since its last exit for longer than the window: no longer crash-looping, and ready.
    #expect(await eventually(timeout: 10) { await fixture.backend.crashLooping("worker").isEmpty })
    let status = try await fixture.backend.status(of: fixture.target)
    #expect(status.current == 1 && status.ready == 1, "\(status)")
    await fixture.cleanUp()
  }

  @Test("a missing local command is refused with what to add")
  func noCommand() async throws {
    let fixture = try Fixture()
    var target = fixture.target
    target.local = nil
    await #expect(throws: BackendError.self) {
      try await fixture.backend.apply(
        ScaleAction(process: "worker", from: 0, to: 1, reason: .minInstances, drainTimeout: 1), to: target)
    }
    await fixture.cleanUp()
  }
}

@Suite("Replica guard")
struct ReplicaGuardTests {
  @Test("when the supervisor dies, its lifeline closes and the replica is stopped with SIGTERM")
  func lifeline() async throws {
    let folder = try scratchDirectory("guard")
    defer { try? FileManager.default.removeItem(at: folder) }
    try writeScript(
      folder.appendingPathComponent("worker.sh"),
      """
      trap 'echo term > "\(folder.path)/term"; exit 0' TERM
      echo $$ > "\(folder.path)/pid"
      while true; do sleep 0.1; done
      """)
    let lifeline = Pipe()
    // As the supervisor does: the write end stays with us alone.
    _ = fcntl(lifeline.fileHandleForWriting.fileDescriptor, F_SETFD, FD_CLOEXEC)
    let guardProcess = Process()
    guardProcess.executableURL = try CapstanBinary.url()
    guardProcess.arguments = [
      "replica-guard", "--drain-timeout", "5", "--", folder.appendingPathComponent("worker.sh").path,
    ]
    guardProcess.standardInput = lifeline
    try guardProcess.run()
    #expect(
      await eventually { FileManager.default.fileExists(atPath: folder.appendingPathComponent("pid").path) })
    // What the kernel does for a supervisor killed with SIGKILL: its end of the pipe closes.
    try lifeline.fileHandleForWriting.close()
    #expect(
      await eventually { FileManager.default.fileExists(atPath: folder.appendingPathComponent("term").path) })
    #expect(await eventually { !guardProcess.isRunning })
  }
}

@Suite("Command backend")
struct CommandBackendTests {
  func target() throws -> ScalingTarget {
    try PolicyLoader.load(yaml: "processes:\n  web: {scaling: {min: 2, max: 6}}\n", file: "p.yaml").policy
      .target(named: "web")!
  }

  @Test("runs argv with the process and the count, and remembers the count it set")
  func applies() async throws {
    let folder = try scratchDirectory("command-backend")
    defer { try? FileManager.default.removeItem(at: folder) }
    try writeScript(
      folder.appendingPathComponent("scale.sh"),
      #"echo "$1 $2 $CAPSTAN_FROM $CAPSTAN_DRAIN_TIMEOUT" >> calls"#)
    let backend = CommandBackend(
      settings: .init(argv: ["./scale.sh"]), workingDirectory: folder, logger: Logger(label: "test"))
    let target = try target()
    #expect(try await backend.status(of: target) == ReplicaStatus(2))
    try await backend.apply(
      ScaleAction(process: "web", from: 2, to: 4, reason: .targetTracking, drainTimeout: 30), to: target)
    #expect(try String(contentsOf: folder.appendingPathComponent("calls"), encoding: .utf8) == "web 4 2 30\n")
    #expect(try await backend.status(of: target) == ReplicaStatus(4))
  }

  @Test("the counts it set are kept in its state file and known again after a restart")
  func countsSurviveRestart() async throws {
    let folder = try scratchDirectory("command-backend")
    defer { try? FileManager.default.removeItem(at: folder) }
    let store = try StateStore<[String: Int]>(directory: folder, name: "command-backend.json")
    let first = CommandBackend(
      settings: .init(argv: ["true"]), workingDirectory: folder, store: store, logger: Logger(label: "test"))
    let target = try target()
    try await first.apply(
      ScaleAction(process: "web", from: 2, to: 5, reason: .targetTracking, drainTimeout: 30), to: target)
    let restarted = CommandBackend(
      settings: .init(argv: ["true"]), workingDirectory: folder, store: store, logger: Logger(label: "test"))
    #expect(try await restarted.status(of: target) == ReplicaStatus(5))
  }

  @Test(
    "without status_argv, a process never set is taken at min once and remembered: a reload or restart that raises min finds it below and the engine raises it through the hook"
  )
  func raisedMin() async throws {
    let folder = try scratchDirectory("command-backend")
    defer { try? FileManager.default.removeItem(at: folder) }
    let store = try StateStore<[String: Int]>(directory: folder, name: "command-backend.json")
    let first = CommandBackend(
      settings: .init(argv: ["true"]), workingDirectory: folder, store: store, logger: Logger(label: "test"))
    #expect(try await first.status(of: try target()) == ReplicaStatus(2))
    // min raised from 2 to 4 (a reload, or a restart with the new file): 2 still run.
    let raised = try PolicyLoader.load(
      yaml: "processes:\n  web: {scaling: {min: 4, max: 6}}\n", file: "p.yaml"
    )
    .policy
    #expect(try await first.status(of: try #require(raised.target(named: "web"))) == ReplicaStatus(2))
    let restarted = CommandBackend(
      settings: .init(argv: ["true"]), workingDirectory: folder, store: store, logger: Logger(label: "test"))
    #expect(try await restarted.status(of: try #require(raised.target(named: "web"))) == ReplicaStatus(2))
    let engine = ScalingEngine(policy: raised)
    let (decision, _) = engine.decide(
      EngineInputs(
        signals: [:],
        replicas: ["web": try await restarted.status(of: try #require(raised.target(named: "web")))]),
      state: EngineState(), now: Date())
    #expect(decision.actions.map(\.to) == [4])
    #expect(!decision.events.contains { $0.kind == .externalChange })
  }

  @Test("a failing hook is an error carrying its last words; the count is not changed")
  func failure() async throws {
    let backend = CommandBackend(
      settings: .init(argv: ["sh", "-c", "echo unit not found >&2; exit 5", "hook"]),
      workingDirectory: URL(fileURLWithPath: "/tmp"), logger: Logger(label: "test"))
    let target = try target()
    await #expect {
      try await backend.apply(
        ScaleAction(process: "web", from: 2, to: 3, reason: .targetTracking, drainTimeout: 30), to: target)
    } throws: { error in
      "\(error)" == "web: sh exited with status 5: unit not found"
    }
    #expect(try await backend.status(of: target) == ReplicaStatus(2))
  }

  @Test("status_argv reports the current count")
  func statusCommand() async throws {
    let backend = CommandBackend(
      settings: .init(argv: ["true"], statusArgv: ["sh", "-c", "echo 7", "status"]),
      workingDirectory: URL(fileURLWithPath: "/tmp"), logger: Logger(label: "test"))
    #expect(try await backend.status(of: try target()) == ReplicaStatus(7))
  }
}

@Suite("Dry-run backend")
struct DryRunBackendTests {
  actor Refusing: ScalingBackend {
    var applied = 0
    func status(of target: ScalingTarget) async throws -> ReplicaStatus { ReplicaStatus(1) }
    func apply(_ action: ScaleAction, to target: ScalingTarget) async throws { applied += 1 }
    func shutdown() async {}
  }

  @Test("decides without acting, and remembers what it would have set")
  func shadow() async throws {
    let real = Refusing()
    let dry = DryRunBackend(wrapping: real)
    let target = try PolicyLoader.load(
      yaml: "processes:\n  web: {scaling: {min: 1, max: 6}}\n", file: "p.yaml"
    ).policy
      .target(named: "web")!
    #expect(try await dry.status(of: target) == ReplicaStatus(1))
    try await dry.apply(
      ScaleAction(process: "web", from: 1, to: 3, reason: .targetTracking, drainTimeout: 30), to: target)
    #expect(try await dry.status(of: target) == ReplicaStatus(3))
    #expect(await real.applied == 0)
  }
}
