import ArgumentParser
import CapstanController
import CapstanHTTP
import Foundation

struct Status: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show where each process of a running controller stands, and why.",
    discussion: """
      Reads GET /status from a running `capstan run` (its --listen address): per process the \
      replicas (current, desired, ready), min and max, what holds the count now, each signal \
      against its target, the budget, and the HPA-style conditions.
      """
  )

  @Option(help: "The running controller's --listen address (HOST:PORT) or URL.")
  var url = "127.0.0.1:9464"

  @Flag(help: "Show it again every --interval until interrupted.")
  var watch = false

  @Option(help: "Seconds between two reads with --watch.")
  var interval: Double = 2

  @Option(help: "Output: text (a table and the conditions) or json (the controller's answer).")
  var format: OutputFormat = .text

  func run() async throws {
    guard interval.isFinite, interval >= 0.2, interval <= 3600 else {
      throw ValidationError("--interval must be from 0.2 to 3600 seconds")
    }
    let base = url.contains("://") ? url : "http://\(url)"
    while true {
      let body: Data
      do {
        let response = try await CurlHTTPClient.get(HTTPRequest(url: base + "/status", timeout: 5))
        guard response.status == 200 else {
          throw StatusError(message: "\(base)/status answered \(response.status): is this a capstan run?")
        }
        body = response.body
      } catch let error as StatusError {
        printError("capstan status: error: \(error.message)")
        throw ExitCode(1)
      } catch {
        printError(
          "capstan status: error: cannot reach a running controller at \(base): \(error) (start one with capstan run, or give its --listen address with --url)"
        )
        throw ExitCode(1)
      }
      guard let status = try? JSONDecoder().decode(ControllerStatus.self, from: body) else {
        printError("capstan status: error: \(base)/status did not answer a controller's status")
        throw ExitCode(1)
      }
      if watch && format == .text { print("\u{1B}[H\u{1B}[2J", terminator: "") }
      switch format {
      case .json: print(String(decoding: body, as: UTF8.self), terminator: "")
      case .text: print(StatusTable.text(status), terminator: "")
      }
      guard watch else { return }
      try await Task.sleep(nanoseconds: UInt64(interval * 1e9))
    }
  }

  struct StatusError: Error { var message: String }
}

/// The status as a table, one row a process, then each process's conditions.
enum StatusTable {
  static func text(_ status: ControllerStatus) -> String {
    var out =
      "last tick \(status.lastTick ?? "none yet"); \(status.leading ? "leading" : "following")\(status.problem.map { "; not acting: \($0)" } ?? "")\n"
    let header = ["PROCESS", "REPLICAS", "DESIRED", "READY", "MIN", "MAX", "HELD BY", "SIGNALS", "BUDGET"]
    let rows = status.processes.map { process -> [String] in
      let signals = process.signals.map { signal in
        "\(signal.name) \(signal.value.map(number) ?? "missing")\(signal.target.map { " (target \(number($0)))" } ?? "")"
      }
      let budget = process.budget.map {
        String(format: "$%.2f of $%.2f %@", $0.spentUSD, $0.dailyBudgetUSD, $0.state)
      }
      return [
        process.name, process.current.map(String.init) ?? "-", process.desired.map(String.init) ?? "-",
        process.ready.map(String.init) ?? "-", "\(process.min)", "\(process.max)",
        process.binding.reason + (process.binding.wanted.map { " (wants \($0))" } ?? ""),
        signals.isEmpty ? "-" : signals.joined(separator: ", "), budget ?? "-",
      ]
    }
    let table = [header] + rows
    let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
    for row in table {
      out +=
        zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        .trimmingCharacters(in: .whitespaces) + "\n"
    }
    for process in status.processes {
      let conditions = process.conditions.map { "\($0.type) \($0.status ? "True" : "False") (\($0.reason))" }
      var line = "\(process.name): \(conditions.joined(separator: "; "))"
      for hold in process.holds {
        line += "; \(hold.kind.replacingOccurrences(of: "_", with: " ")) until \(hold.until)"
        if let replicas = hold.replicas { line += " holds \(replicas)" }
      }
      if let predictive = process.predictive { line += "; predictive floor \(predictive)" }
      for budget in process.errorBudgets ?? [] { line += "; \(budget.summary)" }
      out += line + "\n"
    }
    return out
  }

  static func number(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(format: "%.2f", value)
  }
}
