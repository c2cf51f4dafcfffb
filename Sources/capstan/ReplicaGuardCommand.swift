import ArgumentParser
import CapstanBackends

/// Run by the local supervisor for each replica, not by people: see `ReplicaGuard`.
struct ReplicaGuardCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "replica-guard",
    abstract: "Run one replica for the local supervisor (internal).",
    shouldDisplay: false
  )

  @Option(help: "Seconds between SIGTERM and SIGKILL when draining.")
  var drainTimeout: Double = 30

  @Option(help: "A file that holds the guard's pid while it runs, so a restarted supervisor finds it.")
  var pidFile: String?

  @Argument(parsing: .postTerminator)
  var command: [String]

  func run() throws {
    ReplicaGuard.run(argv: command, drainTimeout: drainTimeout, pidFile: pidFile)
  }
}
