import ArgumentParser
import CapstanBackends
import CapstanController
import CapstanCore
import CapstanKEDA
import CapstanKubernetes
import CapstanRuntime
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

#if canImport(Glibc)
  import Glibc
#endif

struct Run: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run the controller: read the signals, decide, and scale through the backend.",
    discussion: """
      SIGTERM or SIGINT: finish the tick in flight, drain the replicas, exit 0. SIGHUP: reload \
      the policy; an invalid one is refused and the running one goes on.
      """
  )

  @Argument(help: "The policy file.", completion: .file(extensions: ["yaml", "yml"]))
  var policy: String

  @Flag(help: "Decide and write the audit log, but start, stop and scale nothing.")
  var dryRun = false

  @Option(help: "Where state that survives a restart, and replica logs, are kept.")
  var stateDir = ".capstan"

  @Option(
    help: "The audit log (JSON Lines, appended); - for standard output. Default: STATE_DIR/audit.jsonl.")
  var auditLog: String?

  @Option(help: "Serve /metrics and /healthz here, as HOST:PORT.")
  var listen = "127.0.0.1:9464"

  @Option(
    help: ArgumentHelp(
      "Serve KEDA's external scaler (gRPC) here, as HOST:PORT, and let KEDA scale: Capstan decides and records but writes no /scale.",
      valueName: "address"))
  var kedaScaler: String?

  func run() async throws {
    Capstan.bootstrapLogging()
    let logger = Logger(label: "capstan")
    let loaded = try Self.loadRunnable(policy)
    loaded.warnings.forEach { printError($0.description) }
    let (host, port) = try parseListen(listen)
    var keda: (host: String, port: Int)?
    if let kedaScaler {
      guard !dryRun else { throw ValidationError("--keda-scaler and --dry-run: choose one") }
      keda = try KEDAScalerService.address(kedaScaler).get()
      guard case .kubernetes = loaded.policy.backend else {
        printError(
          "capstan run: error: --keda-scaler: KEDA scales Kubernetes workloads, and the policy's backend is not kubernetes: set 'backend: kubernetes'"
        )
        throw ExitCode(1)
      }
    }

    let stateDirectory = URL(fileURLWithPath: stateDir)
    try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
    let lock = try StateDirectoryLock(stateDirectory)
    defer { lock.release() }
    // On Kubernetes the state ConfigMap is the copy that outlives the pod (the state directory
    // is an emptyDir): the file is kept for restarts of the process, without waiting on the disk.
    let sharedCopy: Bool
    if case .kubernetes = loaded.policy.backend { sharedCopy = !dryRun } else { sharedCopy = false }
    let store = try StateStore<ControllerState>(
      directory: stateDirectory, name: "state.json", durable: !sharedCopy)
    let saved: ControllerState
    do {
      saved = try store.load() ?? ControllerState()
    } catch {
      printError("capstan run: error: \(error)")
      throw ExitCode(1)
    }
    let problems = saved.engine.problems(now: Date())
    if !problems.isEmpty {
      printError(
        "capstan run: error: \(store.url.path) holds values out of range (\(problems.joined(separator: "; "))): move it aside to start afresh"
      )
      throw ExitCode(1)
    }
    let auditPath = auditLog ?? stateDirectory.appendingPathComponent("audit.jsonl").path
    let audit = try AuditLogFile(path: auditPath, durable: true)

    let baseDirectory = URL(fileURLWithPath: policy).deletingLastPathComponent()
    let metrics = ShardedPrometheusMetrics()
    let built: ScalingBackends.Built
    do {
      built = try ScalingBackends.forRun(
        loaded.policy, baseDirectory: baseDirectory, stateDirectory: stateDirectory,
        guardExecutable: try Self.ownExecutable(), logger: logger,
        metrics: metrics)
    } catch {
      printError("capstan run: error: \(error)")
      throw ExitCode(1)
    }
    var backend = built.backend
    let elector = built.elector
    if dryRun { backend = DryRunBackend(wrapping: backend) }
    let board = keda.map { _ in KEDABackend(wrapping: backend) }
    if let board { backend = board }
    let mode: AuditMode = dryRun ? .dryRun : keda != nil ? .keda : .live

    let controller = Controller(
      policy: loaded.policy, baseDirectory: baseDirectory, backend: backend, audit: audit, store: store,
      state: saved, mode: mode,
      metrics: ControllerMetrics(factory: metrics),
      logger: Logger(label: "capstan.controller"), leader: elector,
      shared: dryRun ? nil : built.sharedState)

    let monitoring = MonitoringServer.application(
      host: host, port: port, metrics: metrics, controller: controller,
      logger: Logger(label: "capstan.http"))
    let policyPath = policy
    let reloader = PolicyReloadService(controller: controller, file: policyPath) { file in
      do {
        return .success(try Self.loadRunnable(file))
      } catch let failure as RunnablePolicyError {
        return .failure(PolicyLoadError(diagnostics: failure.diagnostics))
      } catch {
        return .failure(
          PolicyLoadError(diagnostics: [
            Diagnostic(.error, at: FileLocation(file: file, line: 1, column: 1), "\(error)")
          ]))
      }
    }
    // Services stop in reverse order: the loop drains first, then the lease is given up, and
    // the metrics server goes last.
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
      .init(service: monitoring), .init(service: reloader),
    ]
    if let elector {
      services.append(.init(service: LeaderElectionService(elector: elector, controller: controller)))
    }
    if let keda, let board {
      let scaler = KEDAExternalScaler(
        board: board, processes: { await controller.policy.targets.map(\.name) },
        logger: Logger(label: "capstan.keda"))
      services.append(
        .init(
          service: KEDAScalerService(
            host: keda.host, port: keda.port, scaler: scaler, board: board,
            logger: Logger(label: "capstan.keda"))))
    }
    services.append(.init(service: ControllerService(controller: controller)))
    let group = ServiceGroup(
      configuration: .init(
        services: services,
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    logger.notice(
      "capstan running",
      metadata: [
        "policy": "\(policy)", "mode": "\(mode.rawValue)",
        "state_dir": "\(stateDirectory.path)",
        "listen": "\(host):\(port)",
      ])
    try await group.run()
  }

  struct RunnablePolicyError: Error, CustomStringConvertible {
    var diagnostics: [Diagnostic]
    var description: String { diagnostics.map(\.description).joined(separator: "\n") }
  }

  /// A policy that validates and can run live: every signal has a source, every local process
  /// a command.
  static func loadRunnable(_ file: String) throws -> LoadedPolicy {
    switch PolicySource.load(file) {
    case .failure(.invalid(let error)):
      throw RunnablePolicyError(diagnostics: error.diagnostics)
    case .failure(let failure):
      throw RunnablePolicyError(diagnostics: [
        Diagnostic(.error, at: FileLocation(file: file, line: 1, column: 1), failure.description)
      ])
    case .success(let loaded):
      let problems = Controller.runProblems(loaded.policy, file: file)
      if !problems.isEmpty { throw RunnablePolicyError(diagnostics: problems) }
      return loaded
    }
  }

  static func ownExecutable() throws -> URL {
    let path = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    return URL(fileURLWithPath: path)
  }

  private func parseListen(_ text: String) throws -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
      (0...65535).contains(port)
    else {
      throw ValidationError("--listen '\(text)' must be HOST:PORT, such as 127.0.0.1:9464")
    }
    return (String(text[..<colon]), port)
  }
}

/// One `capstan run` per state directory: a second would fight the first over the replicas.
final class StateDirectoryLock {
  private var descriptor: Int32

  init(_ directory: URL) throws {
    let path = directory.appendingPathComponent("lock").path
    descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard descriptor >= 0, flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
      throw ValidationError(
        "another capstan run is using \(directory.path): stop it, or give this one its own --state-dir")
    }
  }

  func release() {
    if descriptor >= 0 {
      close(descriptor)
      descriptor = -1
    }
  }
}
