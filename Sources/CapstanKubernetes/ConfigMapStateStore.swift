import Foundation
import Logging

/// What Capstan writes of an object's metadata: its name, its namespace, and the
/// resourceVersion a write must carry.
struct ObjectMetadata: Codable {
  var name: String
  var namespace: String?
  var resourceVersion: String?
}

/// The controller's saved state (the day's spend and freeze, windows, cooldowns) in a core/v1
/// ConfigMap, so it outlives the pods: a rollout or a new leader reads what the last leader
/// wrote. Only the leader writes; each write carries the resourceVersion it last saw.
public actor ConfigMapStateStore {
  public nonisolated let namespace: String
  public nonisolated let name: String
  /// The key in the ConfigMap's `data` that holds the state document.
  public static let key = "state.json"
  private let client: KubernetesClient
  private var resourceVersion: String?

  public init(client: KubernetesClient, namespace: String, name: String) {
    self.client = client
    self.namespace = namespace
    self.name = name
  }

  public nonisolated var description: String { "configmap \(namespace)/\(name)" }

  private var path: String { "/api/v1/namespaces/\(namespace)/configmaps" }

  struct ConfigMap: Codable {
    var apiVersion = "v1"
    var kind = "ConfigMap"
    var metadata: ObjectMetadata
    var data: [String: String]?
  }

  /// The state the last leader wrote; nil when there is none yet.
  public func load() async throws -> Data? {
    do {
      let body = try await client.send("GET", "\(path)/\(name)", attempts: 3, patience: 10, timeout: 10)
      let map = try JSONDecoder().decode(ConfigMap.self, from: body)
      resourceVersion = map.metadata.resourceVersion
      return map.data?[Self.key].map { Data($0.utf8) }
    } catch let error as KubernetesAPIError where error.isNotFound {
      resourceVersion = nil
      return nil
    }
  }

  /// Replaces the state; creates the ConfigMap the first time. A conflict (someone wrote since
  /// it was read) is read again and written once more: only the leader writes, so what it
  /// decided is the state.
  public func save(_ data: Data) async throws {
    let text = String(decoding: data, as: UTF8.self)
    for attempt in 1...2 {
      do {
        if let version = resourceVersion {
          let map = ConfigMap(
            metadata: .init(name: name, namespace: namespace, resourceVersion: version),
            data: [Self.key: text])
          let body = try await client.send(
            "PUT", "\(path)/\(name)", body: try JSONEncoder().encode(map), attempts: 3, patience: 10,
            timeout: 10)
          resourceVersion = (try? JSONDecoder().decode(ConfigMap.self, from: body))?.metadata.resourceVersion
        } else {
          let map = ConfigMap(metadata: .init(name: name, namespace: namespace), data: [Self.key: text])
          let body = try await client.send(
            "POST", path, body: try JSONEncoder().encode(map), attempts: 3, patience: 10, timeout: 10)
          resourceVersion = (try? JSONDecoder().decode(ConfigMap.self, from: body))?.metadata.resourceVersion
        }
        return
      } catch let error as KubernetesAPIError
        where (error.isConflict || error.reason == "AlreadyExists") && attempt == 1
      {
        _ = try await load()
      } catch let error as KubernetesAPIError where error.isNotFound && attempt == 1 {
        resourceVersion = nil
      }
    }
  }
}
