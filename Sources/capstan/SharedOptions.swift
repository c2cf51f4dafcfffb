import ArgumentParser
import CapstanCore
import CapstanSimulation
import Foundation

// Options several subcommands take, declared once.

extension Simulator.Start: ExpressibleByArgument {}

/// What a command prints: text for a person, or one JSON object for a program.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

/// What `replay` and `simulate` write besides their output: the audit records and a report.
struct RecordsOutput: ParsableArguments {
  @Option(help: "Output: text (a timeline and a summary) or json (the summary).")
  var format: OutputFormat = .text

  @Option(
    help: "Append the audit records (JSON Lines, with the command's mode) to this file.", completion: .file())
  var auditLog: String?

  @Option(
    help:
      "Write a self-contained HTML report (replicas, the signals, ceilings, budget, every record) to this file.",
    completion: .file(extensions: ["html"]))
  var report: String?
}

/// The traces `simulate` and `tune` read, and how to shape them.
struct TraceArguments: ParsableArguments {
  @Option(
    name: .customLong("trace"),
    help:
      "A request trace: FILE for the one process with a simulation section, or PROCESS=FILE (repeatable).",
    completion: .file())
  var traces: [String]

  @Option(help: "Arrivals this many times as often, such as 1.5.")
  var rate: Double = 1

  @Option(help: "Repeat the trace back to back to this length, such as 24h.")
  var tile: String?

  @Option(help: "A daily shape: the busiest hour this many times the quietest, such as 10 (default 1, flat).")
  var diurnal: Double = 1

  @Option(
    help:
      "How each run begins: oracle (with the replicas the oracle runs at its first tick, ready) or min (cold, at min)."
  )
  var start: Simulator.Start = .oracle

  func load(for policy: Policy) throws -> [String: Trace] {
    guard rate.isFinite, rate >= 0.001, rate <= 1000 else {
      throw ValidationError("--rate \(rate) must be from 0.001 to 1000")
    }
    guard diurnal.isFinite, diurnal >= 1, diurnal <= 1000 else {
      throw ValidationError("--diurnal \(diurnal) must be from 1 (flat) to 1000")
    }
    let tileSeconds = try tile.map { try durationOption($0, "--tile") }
    let simulated =
      policy.targets.filter { $0.simulation != nil }.map(\.name)
      + policy.variantGroups.filter { $0.process.simulation != nil }.map(\.process.name)
    var paths: [String: String] = [:]
    for item in traces {
      let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
      if parts.count == 2 {
        paths[parts[0]] = parts[1]
      } else if simulated.count == 1 {
        paths[simulated[0]] = item
      } else {
        throw ValidationError(
          "--trace \(item): the policy simulates \(simulated.isEmpty ? "no process" : simulated.joined(separator: ", ")); write --trace PROCESS=FILE"
        )
      }
    }
    var loaded: [String: Trace] = [:]
    for (process, path) in paths.sorted(by: { $0.key < $1.key }) {
      do {
        var trace = try Trace.load(path: path).scaled(rate: rate)
        if let tileSeconds { trace = try trace.tiled(to: tileSeconds) }
        trace = trace.diurnal(peakToTrough: diurnal)
        try trace.checkBounds(interval: policy.controller.interval)
        loaded[process] = trace
      } catch {
        printError("\(error)")
        throw ExitCode(1)
      }
    }
    return loaded
  }
}
