import CapstanCore
import CapstanHTTP
import Foundation
import Logging

#if canImport(Glibc)
  import Glibc
#endif

/// Capstan's own supervisor, like foreman or supervisord but with the count of each process set
/// by the policy. Each replica runs under a `capstan replica-guard`, which stops it if Capstan
/// dies. Replica i of a process gets CAPSTAN_PROCESS, CAPSTAN_REPLICA=i and, with `port_base`,
/// PORT=port_base+i; its output goes to `<state dir>/logs/<process>.<i>.log`.
public actor LocalProcessBackend: ScalingBackend {
  public struct Configuration: Sendable {
    /// The `capstan` binary, which runs the guards.
    public var guardExecutable: URL
    /// The policy file's folder: relative working directories start here.
    public var baseDirectory: URL
    public var logDirectory: URL
    /// Where each guard keeps a pid file while it runs. A restarted supervisor finds the guards
    /// of the last one still draining there, and counts them until they are gone.
    public var runDirectory: URL?
    /// Where the controller writes each rate-limited process's share (`NAME.json`): a replica
    /// starts with its values in the environment and the file's path to follow it.
    public var sharesDirectory: URL?
    /// A replica that exits this many times within `crashLoopWindow` is crash-looping.
    public var crashLoopRestarts = 5
    public var crashLoopWindow: TimeInterval = 300
    /// Restart delays double from the first to the most.
    public var firstRestartDelay: TimeInterval = 1
    public var maxRestartDelay: TimeInterval = 60

    public init(
      guardExecutable: URL, baseDirectory: URL, logDirectory: URL, runDirectory: URL? = nil,
      sharesDirectory: URL? = nil
    ) {
      self.guardExecutable = guardExecutable
      self.baseDirectory = baseDirectory
      self.logDirectory = logDirectory
      self.runDirectory = runDirectory
      self.sharesDirectory = sharesDirectory
    }
  }

  enum Phase: Equatable {
    case running
    case waitingToRestart
    case draining
  }

  struct Replica {
    var index: Int
    var process: Process?
    /// Standard input of the guard; its write end lives only here.
    var lifeline: Pipe?
    var phase: Phase
    /// Its `ready_path` has answered 2xx since this process started: it serves.
    var answered = false
    var exits: [Date] = []
    /// A guard the last supervisor started, found draining at start; not a child of this one.
    var leftoverPID: pid_t?
  }

  private let configuration: Configuration
  private let logger: Logger
  private var replicas: [String: [Int: Replica]] = [:]
  private var targets: [String: ScalingTarget] = [:]
  private var stopping = false

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
    self.replicas = Self.leftovers(in: configuration.runDirectory, logger: logger)
  }

  /// Local replicas stop with the supervisor: a restart restores the count instead.
  public nonisolated var replicasOutliveController: Bool { false }
  public nonisolated var countsCrashLoops: Bool { true }

  public func status(of target: ScalingTarget) async throws -> ReplicaStatus {
    for (index, replica) in replicas[target.name, default: [:]]
    where replica.leftoverPID.map({ !ReplicaGuard.isGuard(pid: $0) }) ?? false {
      replicas[target.name]?[index] = nil
      logger.info(
        "a draining replica of the last run is gone",
        metadata: ["process": "\(target.name)", "replica": "\(index)"])
    }
    if let settings = target.local, let path = settings.readyPath, let base = settings.portBase {
      await askReadiness(target.name, path: path, base: base)
    }
    let all = replicas[target.name, default: [:]].values
    let own = all.filter { $0.phase != .draining }
    let ready = own.filter {
      $0.phase == .running && !isCrashLooping($0) && ($0.answered || target.local?.readyPath == nil)
    }
    return ReplicaStatus(current: own.count, ready: ready.count, draining: all.count - own.count)
  }

  /// Asks each running replica that has not yet answered its ready path, all at once, a second
  /// at most each: a server still loading refuses the connection or answers 503.
  private func askReadiness(_ process: String, path: String, base: Int) async {
    let asking = replicas[process, default: [:]].values.filter { $0.phase == .running && !$0.answered }
      .compactMap { replica in replica.process.map { (replica.index, $0.processIdentifier) } }
    guard !asking.isEmpty else { return }
    let answered = await withTaskGroup(of: (Int, pid_t)?.self) { group in
      for (index, pid) in asking {
        group.addTask {
          let request = HTTPRequest(url: "http://127.0.0.1:\(base + index)\(path)", timeout: 1)
          guard let response = try? await CurlHTTPClient.get(request), (200..<300).contains(response.status)
          else { return nil }
          return (index, pid)
        }
      }
      var answered: [(Int, pid_t)] = []
      for await result in group { if let result { answered.append(result) } }
      return answered
    }
    // Only the process that was asked: one restarted meanwhile has not answered yet.
    for (index, pid) in answered where replicas[process]?[index]?.process?.processIdentifier == pid {
      replicas[process]?[index]?.answered = true
    }
  }

  /// The guards a previous supervisor started that still run: they drain since it died, and
  /// hold their replica numbers (and GPUs) until they are gone.
  private static func leftovers(in directory: URL?, logger: Logger) -> [String: [Int: Replica]] {
    guard let directory,
      let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
    else { return [:] }
    var found: [String: [Int: Replica]] = [:]
    for name in names where name.hasSuffix(".pid") {
      let path = directory.appendingPathComponent(name).path
      let stem = name.dropLast(4)
      guard let dot = stem.lastIndex(of: "."), let index = Int(stem[stem.index(after: dot)...]),
        let text = try? String(contentsOfFile: path, encoding: .utf8),
        let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), ReplicaGuard.isGuard(pid: pid)
      else {
        unlink(path)
        continue
      }
      let process = String(stem[..<dot])
      found[process, default: [:]][index] = Replica(index: index, phase: .draining, leftoverPID: pid)
      logger.warning(
        "a replica of the last run is still draining: it counts against max until it is gone",
        metadata: ["process": "\(process)", "replica": "\(index)", "pid": "\(pid)"])
    }
    return found
  }

  /// Replicas that keep exiting: restarted with backoff, never counted ready.
  public func crashLoopingReplicas(of target: ScalingTarget) async -> Int { crashLooping(target.name).count }

  public func crashLooping(_ process: String) -> [Int] {
    replicas[process, default: [:]].values.filter { $0.phase != .draining && isCrashLooping($0) }.map(\.index)
      .sorted()
  }

  public func apply(_ action: ScaleAction, to target: ScalingTarget) async throws {
    guard let settings = target.local else {
      throw BackendError(
        process: target.name, "has no local: {command: [...]} to run: add one under processes.\(target.name)")
    }
    targets[target.name] = target
    let active = replicas[target.name, default: [:]].values.filter { $0.phase != .draining }.map(\.index)
      .sorted()
    if action.to > active.count {
      let free = (0...).lazy.filter { index in
        !active.contains(index) && self.replicas[target.name]?[index] == nil
      }
      for index in free.prefix(action.to - active.count) {
        try start(target, settings: settings, index: index)
      }
    } else {
      // The newest replicas, the highest indices, go first, so the rest keep their ports.
      for index in active.suffix(active.count - action.to).reversed() {
        drain(target.name, index: index, timeout: action.drainTimeout)
      }
    }
  }

  public func shutdown() async {
    stopping = true
    for (process, byIndex) in replicas {
      let timeout = targets[process]?.drainTimeout ?? PolicyDefaults.drainTimeout
      for index in byIndex.keys { drain(process, index: index, timeout: timeout) }
    }
    while replicas.values.contains(where: { !$0.isEmpty }) {
      try? await Task.sleep(nanoseconds: 50_000_000)
    }
  }

  // MARK: Starting, draining, restarting

  private func start(_ target: ScalingTarget, settings: LocalProcessSettings, index: Int) throws {
    let directory =
      settings.workingDirectory.map { configuration.baseDirectory.resolving($0) }
      ?? configuration.baseDirectory
    var environment = ProcessInfo.processInfo.environment
    environment.merge(settings.environment) { _, new in new }
    environment["CAPSTAN_PROCESS"] = target.name
    environment["CAPSTAN_REPLICA"] = String(index)
    if let base = settings.portBase { environment["PORT"] = String(base + index) }
    if target.rateLimit != nil, let folder = configuration.sharesDirectory {
      let file = folder.appendingPathComponent("\(target.name).json")
      environment["CAPSTAN_SHARE_FILE"] = file.path
      if let data = FileManager.default.contents(atPath: file.path),
        let share = try? JSONDecoder().decode(WorkerShare.self, from: data)
      {
        environment["CAPSTAN_SHARE_REQUESTS_PER_MINUTE"] = share.requestsPerMinute.map { "\($0)" }
        environment["CAPSTAN_SHARE_TOKENS_PER_MINUTE"] = share.tokensPerMinute.map { "\($0)" }
        environment["CAPSTAN_SHARE_CONCURRENT_REQUESTS"] = share.concurrentRequests.map { "\($0)" }
      }
    }

    try FileManager.default.createDirectory(at: configuration.logDirectory, withIntermediateDirectories: true)
    let logPath = configuration.logDirectory.appendingPathComponent("\(target.name).\(index).log").path
    let logDescriptor = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    guard logDescriptor >= 0 else {
      throw BackendError(
        process: target.name, "cannot open its log \(logPath): \(String(cString: strerror(errno)))")
    }
    let log = FileHandle(fileDescriptor: logDescriptor, closeOnDealloc: true)

    let lifeline = Pipe()
    // The write end must reach no other child, or a replica could keep another's lifeline open.
    _ = fcntl(lifeline.fileHandleForWriting.fileDescriptor, F_SETFD, FD_CLOEXEC)
    let process = Process()
    process.executableURL = configuration.guardExecutable
    var pidFile: [String] = []
    if let run = configuration.runDirectory {
      try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
      pidFile = ["--pid-file", run.appendingPathComponent("\(target.name).\(index).pid").path]
    }
    process.arguments =
      ["replica-guard", "--drain-timeout", String(Int(target.drainTimeout.rounded(.up)))] + pidFile + ["--"]
      + settings.command
    process.environment = environment
    process.currentDirectoryURL = directory
    process.standardInput = lifeline
    process.standardOutput = log
    process.standardError = log
    let name = target.name
    process.terminationHandler = { [weak self] finished in
      let status = finished.terminationStatus
      let pid = finished.processIdentifier
      Task { await self?.exited(name, index: index, pid: pid, status: status) }
    }
    do {
      try process.run()
    } catch {
      throw BackendError(process: target.name, "cannot start replica \(index): \(error.localizedDescription)")
    }
    try? lifeline.fileHandleForReading.close()
    var replica = replicas[target.name]?[index] ?? Replica(index: index, phase: .running)
    replica.process = process
    replica.lifeline = lifeline
    replica.phase = .running
    replica.answered = false
    replicas[target.name, default: [:]][index] = replica
    logger.info(
      "started replica",
      metadata: ["process": "\(name)", "replica": "\(index)", "pid": "\(process.processIdentifier)"])
  }

  private func drain(_ process: String, index: Int, timeout: TimeInterval) {
    guard var replica = replicas[process]?[index] else { return }
    guard let running = replica.process, running.isRunning else {
      replicas[process]?[index] = nil
      return
    }
    replica.phase = .draining
    replicas[process]?[index] = replica
    let pid = running.processIdentifier
    kill(pid, SIGTERM)
    logger.info(
      "draining replica", metadata: ["process": "\(process)", "replica": "\(index)", "pid": "\(pid)"])
    // The guard kills its group at the drain timeout; this is the backstop if the guard is stuck.
    Task { [weak self] in
      try? await Task.sleep(nanoseconds: UInt64((timeout + 5) * 1e9))
      await self?.forceKill(process, index: index, pid: pid)
    }
  }

  private func forceKill(_ process: String, index: Int, pid: Int32) {
    guard let replica = replicas[process]?[index], replica.process?.processIdentifier == pid,
      replica.process?.isRunning == true
    else { return }
    logger.warning(
      "replica outlived its drain: killing its process group",
      metadata: ["process": "\(process)", "replica": "\(index)"])
    kill(-pid, SIGKILL)
  }

  private func exited(_ process: String, index: Int, pid: Int32, status: Int32) {
    guard var replica = replicas[process]?[index], replica.process?.processIdentifier == pid else { return }
    replica.process = nil
    replica.lifeline = nil
    if replica.phase == .draining || stopping {
      replicas[process]?[index] = nil
      logger.info(
        "replica stopped", metadata: ["process": "\(process)", "replica": "\(index)", "status": "\(status)"])
      return
    }
    let now = Date()
    replica.exits = replica.exits.filter { now.timeIntervalSince($0) < configuration.crashLoopWindow } + [now]
    replica.phase = .waitingToRestart
    replicas[process]?[index] = replica
    let delay = min(
      configuration.maxRestartDelay,
      configuration.firstRestartDelay * pow(2, Double(replica.exits.count - 1)))
    let level: Logger.Level = isCrashLooping(replica) ? .error : .warning
    logger.log(
      level: level, "replica exited on its own: restarting",
      metadata: [
        "process": "\(process)", "replica": "\(index)", "status": "\(status)", "restart_in_s": "\(delay)",
        "crash_looping": "\(isCrashLooping(replica))",
      ])
    Task { [weak self] in
      try? await Task.sleep(nanoseconds: UInt64(delay * 1e9))
      await self?.restart(process, index: index)
    }
  }

  private func restart(_ process: String, index: Int) {
    guard !stopping, let replica = replicas[process]?[index], replica.phase == .waitingToRestart,
      let target = targets[process], let settings = target.local
    else { return }
    do {
      try start(target, settings: settings, index: index)
    } catch {
      logger.error("cannot restart replica", metadata: ["process": "\(process)", "error": "\(error)"])
    }
  }

  /// Exits counted within the window back from now, not from the last exit: a replica that
  /// has stayed up a whole window since is serving again, and counts ready.
  private func isCrashLooping(_ replica: Replica) -> Bool {
    let now = Date()
    return replica.exits.count { now.timeIntervalSince($0) < configuration.crashLoopWindow }
      >= configuration.crashLoopRestarts
  }
}
