import ArgumentParser
import CapstanCore
import CapstanReplay
import CapstanRuntime
import CapstanSimulation
import Foundation

struct Simulate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run a policy closed-loop against request traces: what it would cost, and its SLO.",
    discussion: """
      The engine that runs live decides on signals measured from a simulated fleet fed by the \
      trace, on a virtual clock, and its actions change that fleet. Traces: the Azure LLM CSV \
      (TIMESTAMP,ContextTokens,GeneratedTokens), Mooncake JSON Lines, or a CSV with \
      timestamp,input_tokens,output_tokens or timestamp,work_seconds. Each traced process needs a \
      simulation: section in the policy.
      """
  )

  @Argument(help: "The policy file.", completion: .file(extensions: ["yaml", "yml"]))
  var policy: String

  @OptionGroup var trace: TraceArguments

  @Option(
    help:
      "Baselines to run on the same traces and fleets: oracle, static, zero-wait, hpa, keda (comma-separated)."
  )
  var compare: String?

  @OptionGroup var output: RecordsOutput

  func run() throws {
    Capstan.bootstrapLogging()
    let loaded = try PolicySource.loadOrExit(policy)
    var baselines: [Baseline] = []
    for name in (compare ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
      guard let baseline = Baseline(rawValue: name) else {
        throw ValidationError("--compare \(name): choose from \(Baseline.names)")
      }
      if !baselines.contains(baseline) { baselines.append(baseline) }
    }
    let loadedTraces = try trace.load(for: loaded.policy)
    let simulator: Simulator
    do {
      simulator = try Simulator(policy: loaded.policy, traces: loadedTraces, start: trace.start)
    } catch {
      printError(
        error.location(in: loaded.policy).map { "\($0): error: \(error)" }
          ?? "capstan simulate: error: \(error)")
      throw ExitCode(1)
    }
    for target in loaded.policy.targets where loadedTraces[target.name] != nil {
      if let predictive = target.predictive, predictive.history != .learned {
        printError(
          "\(policy): note: the \(predictive.name) of '\(target.name)' learns from the simulated run as it goes; its history (\(predictive.historyDescription)) is read by run and replay"
        )
      }
    }
    let audit = try openReportAuditLog(output.auditLog, command: "simulate")
    defer { audit?.close() }
    let reportFile = try OutputFile.prepare(output.report, option: "--report")
    let recorder = reportFile.map { _ in ReportRecorder(policy: loaded.policy) }
    // The timeline prints as the run goes, so a long trace holds no list of its events.
    let width = ReplayReport.timelineWidth(simulator.traces.keys.sorted())
    var timelined = 0
    if output.format == .text { print("Timeline") }
    do {
      // The oracle and the static pools are searched once, for every run that needs them.
      let yardstick =
        trace.start == .oracle || baselines.contains(.oracle) || baselines.contains(.staticPool)
        ? try simulator.yardstick() : nil
      let result = try simulator.run(yardstick: yardstick, report: recorder) { event in
        recorder?.event(event)
        if output.format == .text {
          print(ReplayReport.timelineLine(event, width: width), terminator: "")
          timelined += 1
        }
        try audit?.append(AuditRecord(event, mode: .simulate))
      }
      let runs =
        try [result] + baselines.map { try simulator.run($0, yardstick: yardstick, report: recorder) }
      if let reportFile, let recorder {
        try reportFile.write(
          HTMLReport.render(
            recorder, title: "capstan simulate \(URL(fileURLWithPath: policy).lastPathComponent)",
            subtitle:
              "\(simulator.traces.keys.sorted().joined(separator: ", ")): the policy\(baselines.isEmpty ? "" : " beside \(baselines.map(\.rawValue).joined(separator: ", "))"), \(Ceilings.format((result.seconds / 3600 * 100).rounded() / 100)) hours simulated; \(SimulationReport.startSentence(result.start))",
            tables: SimulationReport.tables(runs).map {
              HTMLReport.Table(caption: $0.title, header: $0.header, rows: $0.rows)
            }))
      }
      switch output.format {
      case .text:
        if timelined == 0 { print(ReplayReport.timelineEmpty, terminator: "") }
        print()
        print(SimulationReport.text(runs), terminator: "")
      case .json: print(SimulationReport.json(runs), terminator: "")
      }
    } catch let error as TraceError {
      printError("capstan simulate: \(error)")
      throw ExitCode(1)
    }
  }
}
