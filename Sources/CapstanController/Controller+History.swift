import CapstanCore
import CapstanReplay
import CapstanSignals
import Foundation

/// A finished read of a predictive process's history: its values, or why there are none, and
/// the tick time it was read up to.
struct HistoryRead: Sendable {
  var samples: Result<[(time: Date, value: Double)], any Error>
  var through: Date
}

extension Controller {
  /// How long a tick waits for the history reads it starts: a quick source (a local file, a
  /// near Prometheus) is learned at once, and a slow or hung one (a range query that takes
  /// minutes, a FIFO with no writer, a hung mount) never holds the tick, the loop or a signal.
  static let historyWait: TimeInterval = 2

  /// Reads each predictive process's history source (a recorded-metrics file, a Prometheus
  /// range over the history kept) at start and then every `refresh`, off the tick, and hands
  /// it to the engine when it arrives. The first read takes the whole window kept; later ones
  /// start a slot before the last one that succeeded (values read twice change nothing: a slot
  /// keeps its highest). A source that cannot be read is logged and tried again at the next
  /// refresh; meanwhile the floor works from what it has, or turns off with a warning record
  /// when that is too little. A read still under way is not started again.
  func readHistory(now: Date) async {
    learnArrivedHistory()
    var started: [String] = []
    for target in policy.targets {
      guard let settings = target.predictive, settings.history != .learned,
        !historyInFlight.contains(target.name)
      else { continue }
      if let last = historyReadAt[target.name], now >= last, now.timeIntervalSince(last) < settings.refresh {
        continue
      }
      historyReadAt[target.name] = now
      var from = now.addingTimeInterval(-settings.keep)
      if let covered = historyReadThrough[target.name], covered <= now {
        from = max(from, covered.addingTimeInterval(-settings.resolution))
      }
      let (name, policy, baseDirectory) = (target.name, self.policy, self.baseDirectory)
      historyInFlight.insert(name)
      started.append(name)
      Task.detached { [weak self] in
        let samples: Result<[(time: Date, value: Double)], any Error>
        do {
          samples = .success(
            try await Self.history(
              settings, policy: policy, baseDirectory: baseDirectory, from: from, to: now))
        } catch {
          samples = .failure(error)
        }
        await self?.historyFinished(name, HistoryRead(samples: samples, through: now))
      }
    }
    guard !started.isEmpty else { return }
    let deadline = Date().addingTimeInterval(Self.historyWait)
    while started.contains(where: historyInFlight.contains), Date() < deadline {
      try? await Task.sleep(nanoseconds: 10_000_000)
    }
    for name in started where historyInFlight.contains(name) {
      logger.warning(
        "the predictive floor's history is still being read; deciding without it until it arrives",
        metadata: ["process": "\(name)"])
    }
    learnArrivedHistory()
  }

  /// Whether a history read a tick started is still under way.
  public var historyReading: Bool { !historyInFlight.isEmpty }

  /// Whether a history read a tick started is not yet in the engine's state: still under way,
  /// or arrived after the tick stopped waiting for it (the next tick hands it over).
  public var historyUnlearned: Bool { !historyInFlight.isEmpty || !historyArrived.isEmpty }

  func historyFinished(_ name: String, _ read: HistoryRead) {
    historyInFlight.remove(name)
    historyArrived[name] = read
  }

  /// Hands the reads that finished to the engine, each as seen up to the tick it was read at.
  private func learnArrivedHistory() {
    for (name, read) in historyArrived.sorted(by: { $0.key < $1.key }) {
      historyArrived[name] = nil
      switch read.samples {
      case .success(let samples):
        engine.learn(samples, for: name, before: read.through, state: &state.engine)
        historyReadThrough[name] = read.through
        logger.info(
          "read the predictive floor's history",
          metadata: ["process": "\(name)", "values": "\(samples.count)"])
      case .failure(let error):
        logger.error(
          "cannot read the predictive floor's history; it works from what it has learned",
          metadata: ["process": "\(name)", "error": "\(error)"])
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
      // On a thread of its own, not the concurrency pool's: opening a FIFO with no writer, or a
      // file on a hung mount, blocks the thread that does it.
      return try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
          continuation.resume(
            with: Result { try HistoryFile.read(path: path, signal: settings.signal, from: from, to: now) })
        }
      }
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
