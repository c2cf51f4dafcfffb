import CapstanCore
import Foundation

/// One live signal source. `now` is passed in, never read, so readers stay testable.
public protocol SignalReader: Sendable {
  var name: String { get }
  /// The source's own timeout; the controller gives up on a read after it.
  var timeout: TimeInterval { get }
  func read(now: Date) async throws -> Double
}

/// Why a read failed, in words an operator can act on.
public struct SignalReadError: Error, CustomStringConvertible, Sendable, Equatable {
  public var signal: String
  public var message: String

  public init(signal: String, _ message: String) {
    self.signal = signal
    self.message = message
  }

  public var description: String { "signal \(signal): \(message)" }
}

public enum SignalReaders {
  /// The reader for a declared source; relative paths are taken from `baseDirectory`, the
  /// policy file's folder, and the variables a source names (`bearer_token_env`,
  /// `password_env`) from `environment`.
  public static func make(
    name: String, source: SignalSource, baseDirectory: URL,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> any SignalReader {
    switch source {
    case .directory(let settings):
      return DirectoryQueueSignal(name: name, settings: settings, baseDirectory: baseDirectory)
    case .command(let settings):
      return CommandSignal(name: name, settings: settings, workingDirectory: baseDirectory)
    case .httpJSON(let settings):
      return HTTPJSONSignal(
        name: name, settings: settings, baseDirectory: baseDirectory, environment: environment)
    case .prometheus(let settings):
      return PrometheusSignal(
        name: name, settings: settings, baseDirectory: baseDirectory, environment: environment)
    case .nvml(let settings):
      return NVMLSignal(name: name, settings: settings, baseDirectory: baseDirectory)
    case .redis(let settings):
      return RedisQueueSignal(name: name, settings: settings, environment: environment)
    }
  }
}

/// A source that several signals declare alike (the same query, URL, queue or command, with the
/// same settings): read once a tick, and its value, or its failure, given to each.
struct SharedSignal: SignalReader {
  let reader: any SignalReader
  /// Every signal that declares the source, the reader's own first.
  let names: [String]
  var name: String { reader.name }
  var timeout: TimeInterval { reader.timeout }
  func read(now: Date) async throws -> Double { try await reader.read(now: now) }
}

extension SignalReaders {
  /// One reader a distinct source: signals that declare the same source with the same settings
  /// share one read a tick, so many processes on one query cost one query.
  public static func make(
    _ specs: [SignalSpec], baseDirectory: URL,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> [any SignalReader] {
    // Grouped by the source's description (every setting is in it), then checked equal.
    var groups: [String: [(name: String, source: SignalSource)]] = [:]
    var order: [String] = []
    // The signals made from one `series_label` declaration: one query for them all.
    var seriesGroups: [String: [(name: String, value: String)]] = [:]
    var seriesOrder: [(key: String, settings: PrometheusSignalSettings)] = []
    for spec in specs {
      guard let source = spec.source else { continue }
      if case .prometheus(let settings) = source, let value = settings.series {
        let shared = settings.sharedQuery
        let key = String(describing: shared)
        if seriesGroups[key] == nil { seriesOrder.append((key, shared)) }
        seriesGroups[key, default: []].append((spec.name, value))
        continue
      }
      let key = String(describing: source)
      if groups[key] == nil { order.append(key) }
      groups[key, default: []].append((spec.name, source))
    }
    var readers: [any SignalReader] = []
    for key in order {
      var remaining = groups[key] ?? []
      while let first = remaining.first {
        let alike = remaining.filter { $0.source == first.source }
        remaining.removeAll { $0.source == first.source }
        let reader = make(
          name: first.name, source: first.source, baseDirectory: baseDirectory, environment: environment)
        readers.append(alike.count == 1 ? reader : SharedSignal(reader: reader, names: alike.map(\.name)))
      }
    }
    for (key, shared) in seriesOrder {
      let series = seriesGroups[key] ?? []
      let query = PrometheusSignal(
        name: series[0].name, settings: shared, baseDirectory: baseDirectory, environment: environment)
      readers.append(PrometheusSeriesSignals(query: query, series: series))
    }
    return readers
  }

  /// Reads that run at once, at most: a policy of thousands of distinct sources opens no more
  /// connections than this.
  public static let concurrentReads = 32

  /// Reads every signal, `limit` at a time, each bounded by its own timeout; one failing or hanging source
  /// costs only its own value. A shared source's result goes to each signal that declares it.
  public static func readAll(
    _ readers: [any SignalReader], now: Date, concurrently limit: Int = concurrentReads
  ) async -> [String: Result<Double, any Error>] {
    await withTaskGroup(
      of: (any SignalReader, Result<Double, any Error>, [String: Result<Double, any Error>]).self
    ) {
      group in
      var waiting = readers.makeIterator()
      // At most `limit` reads at once: a new one starts as each ends.
      func startNext() {
        guard let reader = waiting.next() else { return }
        if let series = reader as? PrometheusSeriesSignals {
          group.addTask {
            let result = await bounded(reader) { try await series.readSeries(now: now) }
            switch result {
            case .success(let values):
              var each: [String: Result<Double, any Error>] = [:]
              for (name, value) in values { each[name] = value.flatMap { checked($0, name) } }
              return (reader, .success(0), each)
            case .failure(let error):
              return (reader, .failure(error), [:])
            }
          }
        } else {
          group.addTask { (reader, await read(reader, now: now), [:]) }
        }
      }
      for _ in 0..<max(1, limit) { startNext() }
      var results: [String: Result<Double, any Error>] = [:]
      for await (reader, result, several) in group {
        startNext()
        if let series = reader as? PrometheusSeriesSignals {
          for (name, _) in series.series {
            if let value = several[name] {
              results[name] = value
            } else if case .failure(let error) = result {
              // A failed query fails every signal it serves, each error naming its signal.
              results[name] = .failure(
                (error as? SignalReadError).map { SignalReadError(signal: name, $0.message) } ?? error)
            }
          }
          continue
        }
        guard let shared = reader as? SharedSignal else {
          results[reader.name] = result
          continue
        }
        for name in shared.names {
          // An error names the signal it is given to.
          results[name] = result.mapError { error in
            (error as? SignalReadError).map { SignalReadError(signal: name, $0.message) } ?? error
          }
        }
      }
      return results
    }
  }

  /// Every load signal (a queue, an age, a utilization, a rate, a latency, a spend) is a finite
  /// number of zero or more; anything else is a failed read, which never scales down.
  static func checked(_ value: Double, _ name: String) -> Result<Double, any Error> {
    guard value.isFinite, value >= 0, value <= PolicyLimits.maxMagnitude else {
      return .failure(
        SignalReadError(
          signal: name, "read \(value), which is not a load: a signal is a finite number from 0 to 1e15"))
    }
    return .success(value)
  }

  static func read(_ reader: any SignalReader, now: Date) async -> Result<Double, any Error> {
    await bounded(reader) { try await reader.read(now: now) }.flatMap { checked($0, reader.name) }
  }

  /// `body`'s result, or a failure once the reader's timeout has passed.
  static func bounded<Value: Sendable>(
    _ reader: any SignalReader, _ body: @escaping @Sendable () async throws -> Value
  ) async -> Result<Value, any Error> {
    await withTaskGroup(of: Result<Value, any Error>?.self) { group in
      group.addTask {
        do { return .success(try await body()) } catch { return .failure(error) }
      }
      group.addTask {
        try? await Task.sleep(nanoseconds: UInt64(reader.timeout * 1e9))
        return Task.isCancelled
          ? nil : .failure(SignalReadError(signal: reader.name, "no answer within \(reader.timeout)s"))
      }
      for await result in group {
        if let result {
          group.cancelAll()
          return result
        }
      }
      return .failure(SignalReadError(signal: reader.name, "cancelled"))
    }
  }
}

/// `Authorization: Bearer` from the environment variable a source names, so no secret sits in
/// the policy file. The environment is handed in, never read here: a process's own environment
/// is not safe to read while another thread sets a variable.
func bearerHeader(_ variable: String?, signal: String, environment: [String: String]) throws -> [String:
  String]
{
  guard let variable else { return [:] }
  guard let token = environment[variable], !token.isEmpty else {
    throw SignalReadError(
      signal: signal, "the environment variable \(variable) named by bearer_token_env is not set")
  }
  return ["Authorization": "Bearer \(token)"]
}
