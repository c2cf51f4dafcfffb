import CapstanCore
import CapstanReplay
import CapstanSignals
import Foundation

extension Controller {
  /// Reads each predictive process's history source (a recorded-metrics file, a Prometheus
  /// range over the history kept) at start and then every `refresh`, and hands it to the
  /// engine. The first read takes the whole window kept; later ones start a slot before the
  /// last one that succeeded (values read twice change nothing: a slot keeps its highest). A
  /// source that cannot be read is logged and tried again at the next refresh; meanwhile the
  /// floor works from what it has, or turns off with a warning record when that is too little.
  func readHistory(now: Date) async {
    for target in policy.targets {
      guard let settings = target.predictive, settings.history != .learned else { continue }
      if let last = historyReadAt[target.name], now >= last, now.timeIntervalSince(last) < settings.refresh {
        continue
      }
      historyReadAt[target.name] = now
      var from = now.addingTimeInterval(-settings.keep)
      if let covered = historyReadThrough[target.name], covered <= now {
        from = max(from, covered.addingTimeInterval(-settings.resolution))
      }
      do {
        let samples = try await Self.history(
          settings, policy: policy, baseDirectory: baseDirectory, from: from, to: now)
        engine.learn(samples, for: target.name, before: now, state: &state.engine)
        historyReadThrough[target.name] = now
        logger.info(
          "read the predictive floor's history",
          metadata: ["process": "\(target.name)", "values": "\(samples.count)"])
      } catch {
        logger.error(
          "cannot read the predictive floor's history; it works from what it has learned",
          metadata: ["process": "\(target.name)", "error": "\(error)"])
      }
    }
  }

  static func history(
    _ settings: PredictiveSettings, policy: Policy, baseDirectory: URL, from: Date, to now: Date
  ) async throws -> [(time: Date, value: Double)] {
    switch settings.history {
    case .learned: return []
    case .file:
      guard let path = HistoryFile.path(settings, baseDirectory: baseDirectory) else { return [] }
      return try HistoryFile.read(path: path, signal: settings.signal, from: from, to: now)
    case .prometheus:
      guard let spec = policy.signals.first(where: { $0.name == settings.signal }),
        case .prometheus(let source) = spec.source
      else {
        throw HistoryError(
          description:
            "history: prometheus needs the signal '\(settings.signal)' to be read from Prometheus; name a file instead"
        )
      }
      // One value a minute: a slot keeps the highest of them.
      let values = try await PrometheusSignal(name: spec.name, settings: source, baseDirectory: baseDirectory)
        .range(from: from, to: now, step: 60)
      return values.map { (time: $0.key, value: $0.value) }.sorted { $0.time < $1.time }
    }
  }

  struct HistoryError: Error, CustomStringConvertible {
    var description: String
  }
}
