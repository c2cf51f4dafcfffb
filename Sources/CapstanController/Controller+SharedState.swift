import CapstanCore
import CapstanKubernetes
import CapstanRuntime
import Foundation
import Logging

/// Where the state is kept beside the local file when several controllers share it: the leader
/// writes it, and whoever leads next reads it before acting.
public protocol SharedStateStore: Sendable {
  func load() async throws -> Data?
  func save(_ data: Data) async throws
  var description: String { get }
}

extension ConfigMapStateStore: SharedStateStore {}

/// The state kept in the cluster: read on coming to lead, written when it changes.
extension Controller {
  /// Reads the shared state; nil when read (or there is none yet), else what went wrong.
  func adoptShared() async -> String? {
    guard let shared else { return nil }
    do {
      if let data = try await shared.load() {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        let saved = try decoder.decode(ControllerState.self, from: data)
        let problems = saved.engine.problems(now: Date())
        guard problems.isEmpty else {
          return
            "the state in \(shared.description) holds values out of range (\(problems.joined(separator: "; "))): delete it to start afresh"
        }
        state.engine = saved.engine
        lastShared = data
        logger.notice("took the state the last leader left", metadata: ["from": "\(shared.description)"])
      }
      adoptedShared = true
      return nil
    } catch {
      return "cannot read the state in \(shared.description): \(error)"
    }
  }

  /// Writes the state to the shared store when it changed; nil when written.
  func saveShared() async -> String? {
    guard let shared else { return nil }
    // The document `persist` wrote for this state, encoded once for both: at ten thousand
    // targets encoding it is most of a tick's work.
    guard let data = lastPersisted ?? (try? StateStore<ControllerState>.encode(state)), data != lastShared
    else { return nil }
    do {
      try await shared.save(data)
      lastShared = data
      return nil
    } catch {
      logger.critical("cannot save state", metadata: ["to": "\(shared.description)", "error": "\(error)"])
      return "cannot save state to \(shared.description): \(error)"
    }
  }
}
