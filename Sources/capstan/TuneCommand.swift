import ArgumentParser
import CapstanCore
import CapstanSimulation
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

struct Tune: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Search the policy's own knobs for the cheapest settings that keep its SLOs, in simulation.",
    discussion: """
      Candidates change the values the policy file writes (targets, rule thresholds, windows, \
      cooldowns, steps, min), are scored on the first part of each trace, and the best are \
      scored again on the rest (--holdout). The winner is the cheapest that kept every SLO on \
      the tuning part; --out writes the policy file with its values, nothing else changed.
      """
  )

  @Argument(help: "The policy file.", completion: .file(extensions: ["yaml", "yml"]))
  var policy: String

  @OptionGroup var trace: TraceArguments

  @Option(help: "How many candidate settings to try, the file's own among them.")
  var candidates = 200

  @Option(help: "The share of each trace, at its end, kept for scoring the best (0 to 0.9).")
  var holdout = 0.5

  @Option(
    help:
      "Cut the tuning part into this many windows; a candidate must meet each SLO in every one (1: judge the part whole)."
  )
  var windows = 4

  @Option(help: "The seed of the search: the same seed, the same result.")
  var seed: UInt64 = 1

  @Option(help: "Write the tuned policy here.", completion: .file(extensions: ["yaml"]))
  var out: String?

  @Option(help: "Output: text or json.")
  var format: OutputFormat = .text

  func run() throws {
    Capstan.bootstrapLogging()
    let loaded = try PolicySource.loadOrExit(policy)
    guard (1...100_000).contains(candidates) else {
      throw ValidationError("--candidates must be 1 to 100000")
    }
    guard holdout >= 0, holdout <= 0.9 else { throw ValidationError("--holdout must be from 0 to 0.9") }
    guard (1...100).contains(windows) else { throw ValidationError("--windows must be 1 to 100") }
    let outFile = try OutputFile.prepare(out, option: "--out")
    let loadedTraces = try trace.load(for: loaded.policy)
    let text = (try? String(contentsOfFile: policy, encoding: .utf8)) ?? ""
    let knobs = Knob.find(in: text, policy: loaded.policy, processes: loadedTraces.keys.sorted())
    for name in Knob.anchored(in: text, policy: loaded.policy, processes: loadedTraces.keys.sorted()) {
      printError(
        "\(policy): note: tune leaves \(name) as it is: it is written through a YAML anchor, and changing it would change every place that uses it"
      )
    }
    guard !knobs.isEmpty else {
      printError(
        "capstan tune: error: \(policy) writes no value tune can change for the traced processes: write the target, windows, cooldowns or steps it should search explicitly"
      )
      throw ExitCode(1)
    }
    var options = Tuner.Options()
    options.candidates = candidates
    options.holdout = holdout
    options.seed = seed
    options.start = trace.start
    options.windows = windows
    let tuner: Tuner
    do {
      tuner = try Tuner(policy: loaded.policy, traces: loadedTraces, knobs: knobs, options: options)
    } catch {
      printError(
        error.location(in: loaded.policy).map { "\($0): error: \(error)" } ?? "capstan tune: error: \(error)")
      throw ExitCode(1)
    }
    let terminal = isatty(STDERR_FILENO) == 1
    let outcome: Tuner.Outcome
    do {
      outcome = try tuner.run { done, total in
        guard terminal else { return }
        let width = 30
        let filled = done * width / max(total, 1)
        let bar =
          "\r[\(String(repeating: "=", count: filled))\(String(repeating: " ", count: width - filled))] \(done)/\(total)"
        FileHandle.standardError.write(Data((done == total ? bar + "\n" : bar).utf8))
      }
    } catch {
      printError("capstan tune: \(error)")
      throw ExitCode(1)
    }
    if let outFile, let winner = outcome.ranked.first {
      let changed = zip(knobs, winner.values).compactMap { knob, value in
        value.map { (knob: knob, value: $0) }
      }
      let tuned = Knob.rewrite(text, changed)
      do {
        _ = try PolicyLoader.load(yaml: tuned, file: outFile.path)
      } catch {
        printError(
          "capstan tune: error: the tuned policy does not load, so \(outFile.path) is not written: \(error)")
        throw ExitCode(1)
      }
      try outFile.write(tuned)
    }
    switch format {
    case .text:
      print(TuneReport.text(outcome, candidates: candidates, holdout: holdout, seed: seed), terminator: "")
    case .json: print(TuneReport.json(outcome), terminator: "")
    }
  }
}
