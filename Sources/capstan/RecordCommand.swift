import ArgumentParser
import CapstanBackends
import CapstanCore
import CapstanReplay
import CapstanSignals
import Foundation

struct Record: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Record a policy's signals in the replay format: live, or backfilled from Prometheus.",
    discussion: """
      Live: poll every signal at the interval and append a row each time, until --duration has \
      passed (or Ctrl-C; every row taken is kept). Backfill (--from and --to): fetch the \
      Prometheus-sourced signals with range queries; other signals' columns stay empty. Then: \
      capstan replay POLICY --metrics FILE.
      """
  )

  @Argument(help: "The policy file whose signals to record.", completion: .file(extensions: ["yaml", "yml"]))
  var policy: String

  @Option(help: "The CSV file to write (appended to if it holds the same columns).", completion: .file())
  var out: String

  @Option(help: "Live: how long to record, such as 1h (default: until interrupted).")
  var duration: String?

  @Option(help: "Backfill from this time (RFC 3339 or Unix seconds).")
  var from: String?

  @Option(help: "Backfill up to this time (RFC 3339 or Unix seconds; default now).")
  var to: String?

  @Option(help: "Time between rows (default: the policy's controller.interval).")
  var interval: String?

  func run() async throws {
    Capstan.bootstrapLogging()
    let loaded = try PolicySource.loadOrExit(policy)
    let step = try interval.map { try durationOption($0, "--interval") } ?? loaded.policy.controller.interval
    let base = URL(fileURLWithPath: policy).deletingLastPathComponent()
    let sourced = loaded.policy.signals.filter { $0.source != nil }
    for signal in loaded.policy.signals where signal.source == nil {
      printError("\(policy): warning: signal '\(signal.name)' has no source; its column stays empty")
    }
    // Live, where the backend can be read from outside, each row also carries every process's
    // replicas and how many are ready, so a replay sees replicas still starting as they were.
    let observer: (any ScalingBackend)?
    do {
      observer = from == nil ? try ScalingBackends.forObserving(loaded.policy, baseDirectory: base) : nil
    } catch {
      printError("capstan record: error: \(error)")
      throw ExitCode(1)
    }
    if observer == nil && from == nil {
      printError(
        "\(policy): note: the \(loaded.policy.backend.name) backend cannot be read from outside the controller; no replica columns are recorded"
      )
    }
    let replicaColumns =
      observer == nil
      ? []
      : loaded.policy.targets.flatMap {
        [RecordedMetrics.replicasColumn(for: $0.name), RecordedMetrics.readyColumn(for: $0.name)]
      }
    let writer: RecordedMetricsWriter
    do {
      writer = try RecordedMetricsWriter(
        path: out, columns: loaded.policy.signals.map(\.name) + replicaColumns)
    } catch {
      printError("capstan record: error: \(error)")
      throw ExitCode(1)
    }
    defer { writer.close() }

    if let from {
      try await backfill(
        sourced, from: try time(from, "--from"), to: try to.map { try time($0, "--to") } ?? Date(),
        step: step,
        base: base, writer: writer)
      return
    }
    let readers = SignalReaders.make(sourced, baseDirectory: base)
    let deadline = try duration.map { Date().addingTimeInterval(try durationOption($0, "--duration")) }
    var next = Date()
    var rows = 0
    while deadline.map({ next <= $0 }) ?? true {
      let now = Date()
      var values: [String: Double] = [:]
      for (name, result) in await SignalReaders.readAll(readers, now: now) {
        switch result {
        case .success(let value): values[name] = value
        case .failure(let error): printError("capstan record: \(error)")
        }
      }
      if let observer {
        for target in loaded.policy.targets {
          do {
            let status = try await observer.status(of: target)
            values[RecordedMetrics.replicasColumn(for: target.name)] = Double(status.current)
            values[RecordedMetrics.readyColumn(for: target.name)] = Double(status.readyWithinCurrent)
          } catch {
            printError("capstan record: cannot read the replicas of \(target.name): \(error)")
          }
        }
      }
      try writer.append(time: now, values: values)
      rows += 1
      next = next.addingTimeInterval(step)
      let wait = next.timeIntervalSinceNow
      if wait > 0, deadline.map({ next <= $0 }) ?? true {
        try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
      }
    }
    printError("capstan record: wrote \(rows) rows to \(out)")
  }

  private func backfill(
    _ signals: [SignalSpec], from: Date, to: Date, step: TimeInterval, base: URL,
    writer: RecordedMetricsWriter
  ) async throws {
    guard from < to else { throw ValidationError("--from must be before --to") }
    var columns: [String: [Date: Double]] = [:]
    for signal in signals {
      guard case .prometheus(let settings) = signal.source else {
        printError(
          "\(policy): warning: signal '\(signal.name)' is not from Prometheus and cannot be backfilled; its column stays empty"
        )
        continue
      }
      do {
        columns[signal.name] = try await PrometheusSignal(
          name: signal.name, settings: settings, baseDirectory: base
        )
        .range(from: from, to: to, step: step)
      } catch {
        printError("capstan record: error: \(error)")
        throw ExitCode(1)
      }
    }
    var time = from
    var rows = 0
    while time <= to {
      let key = time
      try writer.append(time: time, values: columns.compactMapValues { $0[key] })
      rows += 1
      time = time.addingTimeInterval(step)
    }
    printError("capstan record: wrote \(rows) rows to \(out)")
  }

  private func time(_ text: String, _ option: String) throws -> Date {
    guard let date = RecordedMetrics.timestamp(text) else {
      throw ValidationError(
        "\(option) '\(text)' is not a time: use RFC 3339 (2026-11-24T00:00:00Z) or Unix seconds")
    }
    return date
  }
}
