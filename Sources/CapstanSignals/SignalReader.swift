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

extension SignalReaders {
  /// Reads every signal at once, each bounded by its own timeout; one failing or hanging source
  /// costs only its own value.
  public static func readAll(_ readers: [any SignalReader], now: Date) async -> [String: Result<
    Double, any Error
  >] {
    await withTaskGroup(of: (String, Result<Double, any Error>).self) { group in
      for reader in readers {
        group.addTask { (reader.name, await read(reader, now: now)) }
      }
      var results: [String: Result<Double, any Error>] = [:]
      for await (name, result) in group { results[name] = result }
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
    await withTaskGroup(of: Result<Double, any Error>?.self) { group in
      group.addTask {
        do { return try checked(await reader.read(now: now), reader.name) } catch { return .failure(error) }
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
