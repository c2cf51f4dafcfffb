import ArgumentParser
import CapstanCore
import CapstanRuntime
import Foundation
import Logging

@main
struct Capstan: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "capstan",
    abstract: "An autoscaler for AI workloads: scale each process type on the signal that measures its load.",
    version: "0.1.0",
    subcommands: [
      Validate.self, Replay.self, Simulate.self, Tune.self, Run.self, Status.self, Record.self,
      ReplicaGuardCommand.self,
    ]
  )

  static func bootstrapLogging() {
    let level =
      ProcessInfo.processInfo.environment["CAPSTAN_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
      ?? .warning
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
  }
}

/// A duration option such as `--interval 15s`, above zero.
/// A duration on the command line: a recording or a tiled trace may run to a year.
func durationOption(_ text: String, _ option: String, longest: TimeInterval = 366 * 86_400) throws
  -> TimeInterval
{
  switch Quantity.duration(text, longest: longest) {
  case .success(let value) where value > 0: return value
  case .success: throw ValidationError("\(option) must be above zero")
  case .failure(let failure): throw ValidationError("\(option): \(failure.message)")
  }
}

/// The audit log a report command (`replay`, `simulate`) appends to beside its report, which
/// has standard output: so not `-`.
func openReportAuditLog(_ path: String?, command: String) throws -> AuditLogFile? {
  guard let path else { return nil }
  guard path != AuditLogFile.standardOutput else {
    printError(
      "capstan \(command): error: --audit-log -: the report goes to standard output; give the audit log a file"
    )
    throw ExitCode(1)
  }
  do {
    return try AuditLogFile(path: path)
  } catch {
    printError("\(path): error: cannot open the audit log: \(error)")
    throw ExitCode(1)
  }
}

/// Writes to standard error, where diagnostics belong.
func printError(_ text: String) {
  FileHandle.standardError.write(Data((text + "\n").utf8))
}
