import ArgumentParser
import CapstanCore
import CapstanReplay
import CapstanRuntime
import Foundation
import Logging

struct Replay: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Dry-run a policy against recorded metrics and show what it would have done.",
    discussion: """
      The metrics file is CSV (header: timestamp, then one column per metric; RFC 3339 or Unix \
      seconds; an empty cell is a missing value) or JSON Lines (.jsonl). A column \
      <process>.replicas is the replica count the recording ran with.
      """
  )

  @Argument(help: "The policy file.", completion: .file(extensions: ["yaml", "yml"]))
  var policy: String

  @Option(help: "Recorded metrics, CSV or JSON Lines.", completion: .file())
  var metrics: String

  @Option(help: "Tick interval, such as 15s (default: the policy's controller.interval).")
  var interval: String?

  @Option(help: "A sample older than this at a tick counts as missing (default: controller.staleness).")
  var staleness: String?

  @Option(name: .customLong("start"), help: "Start a process at a replica count, as NAME=N (repeatable).")
  var starts: [String] = []

  @Option(
    name: .customLong("budget-days"),
    help:
      "Write each budgets: budget's days here, as BUDGET/YYYY-MM-DD.json, as capstan run does in STATE_DIR/budgets/.",
    completion: .directory)
  var budgetDays: String?

  @OptionGroup var output: RecordsOutput

  func run() throws {
    Capstan.bootstrapLogging()
    let loaded = try PolicySource.loadOrExit(policy)

    var options = CapstanReplay.Replay.Options()
    options.interval = try interval.map { try durationOption($0, "--interval") }
    options.staleness = try staleness.map { try durationOption($0, "--staleness") }
    for start in starts {
      let parts = start.split(separator: "=", maxSplits: 1)
      guard parts.count == 2, let count = Int(parts[1]), count >= 0 else {
        throw ValidationError("--start '\(start)' must be NAME=N with N a whole number, such as inference=2")
      }
      options.start[String(parts[0])] = count
    }

    // Read as it is replayed, so a year of rows takes the memory of a day.
    let recorded: RecordedMetricsFile
    do {
      recorded = try RecordedMetricsFile(path: metrics)
    } catch {
      printError("\(error)")
      throw ExitCode(1)
    }
    // A per-replica signal is rescaled from the recording's count to the replay's, which takes
    // the recording's `<process>.replicas`: without it, it is replayed as recorded.
    if RecordedMetricsFile.Format(path: metrics) == .csv {
      for signal in loaded.policy.signals {
        guard let owner = signal.perReplicaOf,
          !recorded.columns.contains(RecordedMetrics.replicasColumn(for: owner))
        else { continue }
        printError(
          "\(metrics): warning: signal '\(signal.name)' is measured per replica of \(owner), but the recording has no \(RecordedMetrics.replicasColumn(for: owner)) column: it is replayed as recorded, not rescaled to the replay's count of \(owner)"
        )
      }
    }

    let audit = try openReportAuditLog(output.auditLog, command: "replay")
    defer { audit?.close() }
    let reportFile = try OutputFile.prepare(output.report, option: "--report")
    let recorder = reportFile.map { _ in ReportRecorder(policy: loaded.policy, interval: options.interval) }
    // The text timeline comes before the summary, which is known only at the end: its lines wait
    // in a temporary file rather than in memory.
    let timeline = output.format == .text ? TimelineSpool() : nil
    let width = ReplayReport.timelineWidth(loaded.policy.targets.map(\.name))

    do {
      options.history = try predictiveHistory(loaded.policy, recording: metrics)
    } catch {
      printError("\(error)")
      throw ExitCode(1)
    }
    let replay = CapstanReplay.Replay(
      policy: loaded.policy, options: options, logger: Logger(label: "capstan.replay"))
    let result: ReplayResult
    do {
      let days = budgetDays.map { BudgetFiles(directory: URL(fileURLWithPath: $0)) }
      result = try replay.run(
        samples: recorded, keepEvents: false, report: recorder,
        onBudgetDay: { try days?.write([$0], tree: loaded.policy.budgets) }
      ) { event in
        try audit?.append(AuditRecord(event, mode: .replay))
        try timeline?.append(ReplayReport.timelineLine(event, width: width))
        recorder?.event(event)
      }
    } catch let error as ReplayError {
      printError("capstan replay: error: \(error)")
      throw ExitCode(1)
    } catch let error as MetricsFileError {
      printError("\(error)")
      throw ExitCode(1)
    } catch let error as TimelineSpool.WriteError {
      printError("\(error)")
      throw ExitCode(1)
    } catch {
      printError("capstan replay: error: cannot write a budget's day under \(budgetDays ?? ""): \(error)")
      throw ExitCode(1)
    }
    if let reportFile, let recorder {
      try reportFile.write(
        HTMLReport.render(
          recorder, title: "capstan replay \(URL(fileURLWithPath: policy).lastPathComponent)",
          subtitle:
            "\(metrics): \(RFC3339.string(from: result.start)) to \(RFC3339.string(from: result.end)), \(result.ticks) ticks of \(Ceilings.format(result.intervalSeconds))s",
          tables: [ReplayReport.summaryTable(result)] + [ReplayReport.budgetTable(result)].compactMap { $0 }))
    }
    switch output.format {
    case .text:
      print(
        ReplayReport.header(result, policyPath: policy, metricsPath: metrics) + "Timeline", terminator: "\n")
      if let timeline, timeline.lines > 0 {
        timeline.printLines()
      } else {
        print(ReplayReport.timelineEmpty, terminator: "")
      }
      print(ReplayReport.summary(result), terminator: "")
    case .json: print(ReplayReport.json(result), terminator: "")
    }
  }

}

extension Replay {
  /// Each predictive process's `history: {file: ...}`: what it holds in the window kept before
  /// the recording starts. A Prometheus history is for `run`: a replay learns from the recording.
  func predictiveHistory(_ loaded: Policy, recording: String) throws -> [String: [(
    time: Date, value: Double
  )]] {
    let base = URL(fileURLWithPath: policy).deletingLastPathComponent()
    var history: [String: [(time: Date, value: Double)]] = [:]
    var start: Date?
    for target in loaded.targets {
      guard let settings = target.predictive else { continue }
      if settings.history == .prometheus {
        printError(
          "\(policy): note: replay reads no Prometheus history; the \(settings.name) of '\(target.name)' learns from the recording as it goes"
        )
      }
      guard let path = HistoryFile.path(settings, baseDirectory: base) else { continue }
      if start == nil {
        var file = try RecordedMetricsFile(path: recording)
        start = try file.next()?.time
      }
      guard let start else { continue }
      guard FileManager.default.isReadableFile(atPath: path) else {
        throw ValidationError(
          "\(policy): error: the \(settings.name) of '\(target.name)' reads its history from \(path), which cannot be read: record one there (capstan record), or set history: learned"
        )
      }
      let samples = try HistoryFile.read(
        path: path, signal: settings.signal, from: start.addingTimeInterval(-settings.keep), to: start)
      if samples.isEmpty {
        printError(
          "\(path): note: no value of '\(settings.signal)' before the recording starts; the \(settings.name) of '\(target.name)' learns from the recording as it goes"
        )
      }
      history[target.name] = samples
    }
    return history
  }
}

/// Lines kept in an unlinked temporary file until they can be printed.
final class TimelineSpool {
  private let file: UnsafeMutablePointer<FILE>?
  private(set) var lines = 0

  init() { file = tmpfile() }
  deinit { if let file { fclose(file) } }

  struct WriteError: Error, CustomStringConvertible {
    var description: String {
      "capstan replay: error: cannot write the timeline to a temporary file: is /tmp writable and not full?"
    }
  }

  func append(_ line: String) throws {
    guard let file, fputs(line, file) >= 0 else { throw WriteError() }
    lines += 1
  }

  /// Prints every line, in order.
  func printLines() {
    guard let file else { return }
    rewind(file)
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    defer { free(line) }
    while getline(&line, &capacity, file) > 0, let line {
      print(String(cString: line), terminator: "")
    }
  }
}
