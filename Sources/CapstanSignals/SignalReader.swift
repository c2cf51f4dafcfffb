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
  /// policy file's folder.
  public static func make(name: String, source: SignalSource, baseDirectory: URL) -> any SignalReader {
    switch source {
    case .directory(let settings):
      return DirectoryQueueSignal(name: name, settings: settings, baseDirectory: baseDirectory)
    case .command(let settings):
      return CommandSignal(name: name, settings: settings, workingDirectory: baseDirectory)
    case .httpJSON(let settings):
      return HTTPJSONSignal(name: name, settings: settings, baseDirectory: baseDirectory)
    case .prometheus(let settings):
      return PrometheusSignal(name: name, settings: settings, baseDirectory: baseDirectory)
    case .nvml(let settings):
      return NVMLSignal(name: name, settings: settings, baseDirectory: baseDirectory)
    case .redis(let settings):
      return RedisQueueSignal(name: name, settings: settings)
    }
  }
}
