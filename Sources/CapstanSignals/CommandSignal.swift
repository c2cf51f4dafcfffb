import CapstanCore
import CapstanRuntime
import Foundation

/// A program whose standard output is one number. A non-zero exit, a timeout or output that is
/// not a number is an error for this signal at this tick, never for the loop.
public struct CommandSignal: SignalReader {
  public let name: String
  public let settings: CommandSignalSettings
  public let workingDirectory: URL

  public var timeout: TimeInterval { settings.timeout }

  public func read(now: Date) async throws -> Double {
    let outcome: ProgramRunner.Outcome
    do {
      outcome = try await ProgramRunner.run(
        settings.argv, workingDirectory: workingDirectory, timeout: timeout)
    } catch {
      throw SignalReadError(signal: name, "\(error)")
    }
    let program = settings.argv[0]
    if outcome.timedOut {
      throw SignalReadError(signal: name, "\(program) ran past its \(format(timeout)) timeout and was killed")
    }
    guard outcome.status == 0 else {
      let said = lastLine(outcome.stderr).map { ": \($0)" } ?? ""
      throw SignalReadError(signal: name, "\(program) exited with status \(outcome.status)\(said)")
    }
    let text = outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    guard let value = Double(text), value.isFinite else {
      let shown = text.count > 60 ? String(text.prefix(60)) + "…" : text
      throw SignalReadError(signal: name, "\(program) printed '\(shown)', not one number")
    }
    return value
  }

  private func lastLine(_ text: String) -> String? {
    text.split(whereSeparator: \.isNewline).last.map { String($0.prefix(200)) }
  }

  private func format(_ seconds: TimeInterval) -> String { Ceilings.format(seconds) + "s" }
}
