import Foundation
import Logging

/// What Capstan writes of an object's metadata: its name, its namespace, and the
/// resourceVersion a write must carry.
struct ObjectMetadata: Codable {
  var name: String
  var namespace: String?
  var resourceVersion: String?
}

/// The controller's saved state (the day's spend and freeze, windows, cooldowns) in core/v1
/// ConfigMaps, so it outlives the pods: a rollout or a new leader reads what the last leader
/// wrote. Only the leader writes; each write of the ConfigMap named `name` carries the
/// resourceVersion it last saw.
///
/// The API server refuses a ConfigMap whose data passes 1 MiB, which ten thousand processes'
/// state does. A state up to `partBytes` is the `state.json` key of `name`; a larger one is
/// cut into parts, each in a ConfigMap of its own (`NAME-a-0`, `NAME-a-1`, ...), and `name`
/// then names the parts: how many, which of two sets (`a` or `b`), and a generation that each
/// part repeats. A save writes the set `name` does not name, then `name`, so a crash mid-save
/// leaves the last whole state in place; a part of another generation is refused on reading.
/// Parts a smaller state no longer uses stay, unread, until a larger one writes over them.
public actor ConfigMapStateStore {
  public nonisolated let namespace: String
  public nonisolated let name: String
  /// The key in the ConfigMap's `data` that holds the state document.
  public static let key = "state.json"
  /// The most bytes of state one ConfigMap holds: the API server's limit is 1,048,576 bytes of
  /// keys and values, and this leaves room for the keys.
  public static let defaultPartBytes = 1_000_000
  public nonisolated let partBytes: Int
  private let client: KubernetesClient
  private var resourceVersion: String?
  /// The parts `name` names now; nil while the state is whole in `name`.
  private var parts: (set: String, generation: Int)?

  public init(
    client: KubernetesClient, namespace: String, name: String,
    partBytes: Int = ConfigMapStateStore.defaultPartBytes
  ) {
    precondition(partBytes >= 4, "a part holds at least one character of up to 4 bytes")
    self.client = client
    self.namespace = namespace
    self.name = name
    self.partBytes = partBytes
  }

  public nonisolated var description: String { "configmap \(namespace)/\(name)" }

  private var path: String { "/api/v1/namespaces/\(namespace)/configmaps" }

  struct ConfigMap: Codable {
    var apiVersion = "v1"
    var kind = "ConfigMap"
    var metadata: ObjectMetadata
    var data: [String: String]?
  }

  public struct TornState: Error, CustomStringConvertible {
    public var description: String
  }

  /// The name of part `index` of `set`.
  public nonisolated func partName(set: String, index: Int) -> String { "\(name)-\(set)-\(index)" }

  /// The state the last leader wrote; nil when there is none yet.
  public func load() async throws -> Data? {
    let head: ConfigMap
    do {
      let body = try await client.send("GET", "\(path)/\(name)", attempts: 3, patience: 10, timeout: 10)
      head = try JSONDecoder().decode(ConfigMap.self, from: body)
    } catch let error as KubernetesAPIError where error.isNotFound {
      resourceVersion = nil
      parts = nil
      return nil
    }
    resourceVersion = head.metadata.resourceVersion
    let data = head.data ?? [:]
    guard let count = data["parts"].flatMap(Int.init), let set = data["set"],
      let generation = data["generation"].flatMap(Int.init)
    else {
      parts = nil
      return data[Self.key].map { Data($0.utf8) }
    }
    parts = (set, generation)
    var whole = Data()
    for index in 0..<max(0, count) {
      let part = partName(set: set, index: index)
      let map: ConfigMap
      do {
        let body = try await client.send("GET", "\(path)/\(part)", attempts: 3, patience: 10, timeout: 10)
        map = try JSONDecoder().decode(ConfigMap.self, from: body)
      } catch let error as KubernetesAPIError where error.isNotFound {
        throw TornState(
          description:
            "configmap \(namespace)/\(part), part \(index + 1) of \(count) of the state \(name) names, is missing: delete \(name) to start afresh"
        )
      }
      guard map.data?["generation"] == String(generation), let text = map.data?[Self.key] else {
        throw TornState(
          description:
            "configmap \(namespace)/\(part) holds generation \(map.data?["generation"] ?? "none"), not the \(generation) that \(name) names: another writer changed it; delete \(name) to start afresh"
        )
      }
      whole.append(contentsOf: text.utf8)
    }
    return whole
  }

  /// Replaces the state; creates the ConfigMaps the first time. A conflict on `name` (someone
  /// wrote since it was read) is read again and written once more: only the leader writes, so
  /// what it decided is the state.
  public func save(_ data: Data) async throws {
    let text = String(decoding: data, as: UTF8.self)
    var head = [Self.key: text]
    if data.count > partBytes {
      // Into the set `name` does not name now, so the state it names stays whole until the new
      // one is.
      let set = parts?.set == "a" ? "b" : "a"
      let generation = (parts?.generation ?? 0) + 1
      let chunks = Self.split(text, bytes: partBytes)
      for (index, chunk) in chunks.enumerated() {
        try await put(
          partName(set: set, index: index), data: [Self.key: chunk, "generation": String(generation)])
      }
      head = ["parts": String(chunks.count), "set": set, "generation": String(generation)]
      try await writeHead(head)
      parts = (set, generation)
    } else {
      try await writeHead(head)
      parts = nil
    }
  }

  /// `text` in pieces of at most `bytes` bytes of UTF-8, cut only between characters.
  static func split(_ text: String, bytes: Int) -> [String] {
    let utf8 = Array(text.utf8)
    var pieces: [String] = []
    var start = 0
    while start < utf8.count {
      var end = min(start + bytes, utf8.count)
      // Back off a continuation byte (10xxxxxx), so no character is cut in two.
      while end < utf8.count && end > start + 1 && utf8[end] & 0xC0 == 0x80 { end -= 1 }
      pieces.append(String(decoding: utf8[start..<end], as: UTF8.self))
      start = end
    }
    return pieces
  }

  /// Writes a part whatever its version: the leader alone writes parts, and `name`, written
  /// after, is the write that checks.
  private func put(_ part: String, data: [String: String]) async throws {
    let map = ConfigMap(metadata: .init(name: part, namespace: namespace), data: data)
    let body = try JSONEncoder().encode(map)
    do {
      _ = try await client.send("PUT", "\(path)/\(part)", body: body, attempts: 3, patience: 10, timeout: 10)
    } catch let error as KubernetesAPIError where error.isNotFound {
      _ = try await client.send("POST", path, body: body, attempts: 3, patience: 10, timeout: 10)
    }
  }

  private func writeHead(_ data: [String: String]) async throws {
    for attempt in 1...2 {
      do {
        if let version = resourceVersion {
          let map = ConfigMap(
            metadata: .init(name: name, namespace: namespace, resourceVersion: version), data: data)
          let body = try await client.send(
            "PUT", "\(path)/\(name)", body: try JSONEncoder().encode(map), attempts: 3, patience: 10,
            timeout: 10)
          resourceVersion = (try? JSONDecoder().decode(ConfigMap.self, from: body))?.metadata.resourceVersion
        } else {
          let map = ConfigMap(metadata: .init(name: name, namespace: namespace), data: data)
          let body = try await client.send(
            "POST", path, body: try JSONEncoder().encode(map), attempts: 3, patience: 10, timeout: 10)
          resourceVersion = (try? JSONDecoder().decode(ConfigMap.self, from: body))?.metadata.resourceVersion
        }
        return
      } catch let error as KubernetesAPIError
        where (error.isConflict || error.reason == "AlreadyExists") && attempt == 1
      {
        // Read again for the version; a torn state there is what this write replaces.
        do { _ = try await load() } catch is TornState {}
      } catch let error as KubernetesAPIError where error.isNotFound && attempt == 1 {
        resourceVersion = nil
      }
    }
  }
}
