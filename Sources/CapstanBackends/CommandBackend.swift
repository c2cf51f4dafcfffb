import CapstanCore
import CapstanRuntime
import Foundation
import Logging

/// The escape hatch: a program carries out each scale (a systemd template unit, docker compose,
/// Nomad). It runs as `argv + [process, replicas]` with CAPSTAN_PROCESS, CAPSTAN_REPLICAS,
/// CAPSTAN_FROM and CAPSTAN_DRAIN_TIMEOUT set; exit status 0 means done. The current count comes
/// from `status_argv + [process]`, or is the last count set.
public actor CommandBackend: ScalingBackend {
  private let settings: CommandBackendSettings
  private let workingDirectory: URL
  private let logger: Logger
  /// Where the counts it set are kept across restarts (without `status_argv` they are all it
  /// knows of the fleet); nil keeps them in memory only.
  private let store: StateStore<[String: Int]>?
  private var lastSet: [String: Int]

  public init(
    settings: CommandBackendSettings, workingDirectory: URL, store: StateStore<[String: Int]>? = nil,
    logger: Logger
  ) {
    self.settings = settings
    self.workingDirectory = workingDirectory
    self.store = store
    self.logger = logger
    do {
      lastSet = try store?.load() ?? [:]
    } catch {
      logger.error(
        "cannot read the counts set before: starting from each process's min", metadata: ["error": "\(error)"]
      )
      lastSet = [:]
    }
  }

  public func status(of target: ScalingTarget) async throws -> ReplicaStatus {
    guard let statusArgv = settings.statusArgv else {
      if let known = lastSet[target.name] { return ReplicaStatus(known) }
      // Never set: taken to run at min, once, and that is remembered, so a reload or restart
      // that raises min later finds the count below it and runs the hook to raise it.
      lastSet[target.name] = target.min
      save(about: target.name)
      return ReplicaStatus(target.min)
    }
    let outcome = try await run(statusArgv + [target.name], process: target.name, environment: [:])
    guard let count = Int(outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), count >= 0 else {
      throw BackendError(
        process: target.name, "\(statusArgv[0]) printed '\(outcome.stdout.prefix(60))', not a replica count")
    }
    return ReplicaStatus(count)
  }

  public func apply(_ action: ScaleAction, to target: ScalingTarget) async throws {
    _ = try await run(
      settings.argv + [action.process, String(action.to)], process: action.process,
      environment: [
        "CAPSTAN_PROCESS": action.process, "CAPSTAN_REPLICAS": String(action.to),
        "CAPSTAN_FROM": String(action.from),
        "CAPSTAN_DRAIN_TIMEOUT": String(Int(action.drainTimeout.rounded(.up))),
      ])
    lastSet[action.process] = action.to
    save(about: action.process)
  }

  private func save(about process: String) {
    do {
      try store?.save(lastSet)
    } catch {
      logger.critical(
        "cannot save the counts set: after a restart they are taken as min",
        metadata: ["process": "\(process)", "error": "\(error)"])
    }
  }

  public func shutdown() async {}

  private func run(_ argv: [String], process: String, environment: [String: String]) async throws
    -> ProgramRunner.Outcome
  {
    var merged = ProcessInfo.processInfo.environment
    merged.merge(environment) { _, new in new }
    let outcome: ProgramRunner.Outcome
    do {
      outcome = try await ProgramRunner.run(
        argv, workingDirectory: workingDirectory, environment: merged, timeout: settings.timeout)
    } catch {
      throw BackendError(process: process, "\(error)")
    }
    if outcome.timedOut {
      throw BackendError(
        process: process, "\(argv[0]) ran past its \(Int(settings.timeout))s timeout and was killed")
    }
    guard outcome.status == 0 else {
      let said = outcome.stderr.split(whereSeparator: \.isNewline).last.map { ": \($0.prefix(200))" } ?? ""
      throw BackendError(process: process, "\(argv[0]) exited with status \(outcome.status)\(said)")
    }
    return outcome
  }
}
