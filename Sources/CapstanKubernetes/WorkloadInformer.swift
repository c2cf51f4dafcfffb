import CapstanCore
import CapstanHTTP
import Foundation
import Logging

/// A local cache of one kind of workload in one namespace, fed by a LIST and then a WATCH from
/// its resourceVersion, as client-go's informers are: a tick reads the cache instead of asking
/// the API server, so a steady fleet costs one open watch per kind and namespace.
///
/// A watch that ends (the server's timeout) is resumed from the last resourceVersion seen; one
/// answered `410 Gone`, or with an ERROR event (`410 Expired` after etcd's compaction), starts
/// again from a LIST, as client-go's reflector does; one that breaks is retried with backoff.
/// While no watch is open the cache is not in sync, and `read` says so, so no decision is made
/// on what may be stale; it is in sync again once a watch opens (the events since its
/// resourceVersion come first on it) or a LIST completes.
public final class WorkloadInformer: @unchecked Sendable {
  /// What the cache holds of one workload: its Scale as `/scale` would give it (for the next
  /// write's resourceVersion), the rest of what the backend reads, and its annotations.
  public struct Entry: Sendable, Equatable {
    public var scale: Scale
    public var summary: WorkloadSummary
    public var annotations: [String: String]
  }

  /// Why `read` has no entry to give.
  public enum Unreadable: Error, Equatable, CustomStringConvertible {
    /// No watch is open now; `since` is when the last one broke, `why` its error.
    case notInSync(since: Date, why: String)
    case notFound

    public var description: String {
      switch self {
      case .notInSync(let since, let why):
        "the watch is not open since \(RFC3339.string(from: since)) (\(why)): not deciding from a cache that may be stale"
      case .notFound: "not found"
      }
    }
  }

  public let kind: KubernetesWorkload.Kind
  public let namespace: String
  private let client: KubernetesClient
  private let logger: Logger
  /// The server ends each watch after this long, and it is opened again from where it was.
  private let watchSeconds: Int

  private let lock = NSLock()
  private var entries: [String: Entry] = [:]
  private var resourceVersion: String?
  private var connected = false
  private var broken: (since: Date, why: String)?
  private var stopped = false
  private var loop: Task<Void, Never>?

  public init(
    kind: KubernetesWorkload.Kind, namespace: String, client: KubernetesClient, logger: Logger,
    watchSeconds: Int = 300
  ) {
    self.kind = kind
    self.namespace = namespace
    self.client = client
    self.logger = logger
    self.watchSeconds = watchSeconds
  }

  private var collectionPath: String {
    KubernetesWorkload(kind: kind, name: "").collectionPath(namespace: namespace)
  }

  private var kindName: String { KubernetesWorkload(kind: kind, name: "").kindName }

  /// The first LIST, then the watch loop in the background. Throws what the LIST met, so the
  /// first tick reads a filled cache or fails as a direct read would.
  public func start() async throws {
    try await list()
    lock.withLock { connected = true }
    loop = Task { [weak self] in await self?.run() }
  }

  public func stop() {
    lock.withLock { stopped = true }
    loop?.cancel()
  }

  /// The cached workload named `name`, or why there is none to decide from.
  public func read(_ name: String) -> Result<Entry, Unreadable> {
    lock.withLock {
      if !connected, let broken { return .failure(.notInSync(since: broken.since, why: broken.why)) }
      guard let entry = entries[name] else { return .failure(.notFound) }
      return .success(entry)
    }
  }

  /// What a write of Capstan's own made the workload, before its watch event arrives: the next
  /// tick must not read its own change as someone else's.
  public func wrote(_ scale: Scale, of name: String) {
    lock.withLock {
      guard var entry = entries[name], Self.isNewer(scale.metadata.resourceVersion, than: entry) else {
        return
      }
      entry.scale.spec.replicas = scale.spec.replicas
      entry.scale.metadata.resourceVersion = scale.metadata.resourceVersion
      entries[name] = entry
    }
  }

  /// Whether the cache is in sync now: a watch is open.
  public var inSync: Bool { lock.withLock { connected } }

  // MARK: The loop

  private func run() async {
    var backoff: TimeInterval = 0.5
    while !lock.withLock({ stopped }) && !Task.isCancelled {
      do {
        if lock.withLock({ resourceVersion }) == nil { try await list() }
        switch try await watchOnce() {
        case .ended:
          backoff = 0.5
        case .expired(let message):
          logger.notice(
            "the watch ended with an error; listing again",
            metadata: ["kind": "\(kindName)", "namespace": "\(namespace)", "message": "\(message)"])
          lock.withLock {
            resourceVersion = nil
            markBroken(message)
          }
        case .stopped:
          return
        }
      } catch {
        lock.withLock { markBroken("\(error)") }
        logger.warning(
          "the watch broke; retrying",
          metadata: [
            "kind": "\(kindName)", "namespace": "\(namespace)", "error": "\(error)",
            "retry_seconds": "\(backoff)",
          ])
        try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
        backoff = min(backoff * 2, 30)
      }
    }
  }

  /// Called with the lock held.
  private func markBroken(_ why: String) {
    if connected || broken == nil { broken = (Date(), why) }
    connected = false
  }

  private func list() async throws {
    let data = try await client.send("GET", collectionPath)
    guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let items = json["items"] as? [[String: Any]]
    else {
      throw KubernetesAPIError(
        method: "GET", path: collectionPath, status: 200, reason: "", message: "the answer is not a list")
    }
    var fresh: [String: Entry] = [:]
    for item in items {
      if let (name, entry) = Self.entry(item, namespace: namespace, kindName: kindName) {
        fresh[name] = entry
      }
    }
    let version = (json["metadata"] as? [String: Any])?["resourceVersion"] as? String
    lock.withLock {
      entries = fresh
      resourceVersion = version
      connected = true
      broken = nil
    }
  }

  enum WatchOutcome {
    case ended
    case expired(String)
    case stopped
  }

  private func watchOnce() async throws -> WatchOutcome {
    guard let version = lock.withLock({ resourceVersion }) else { return .ended }
    let path =
      collectionPath
      + "?watch=1&allowWatchBookmarks=true&resourceVersion=\(version)&timeoutSeconds=\(watchSeconds)"
    // The server ends the watch at its timeout; a minute more before Capstan gives up on it.
    let request = try await client.streamingRequest(path, timeout: TimeInterval(watchSeconds + 60))
    let outcome = LockedValue<WatchOutcome>(.ended)
    let response: HTTPResponse = try await withCheckedThrowingContinuation { continuation in
      Thread.detachNewThread { [self] in
        continuation.resume(
          with: Result {
            try CurlHTTPClient.stream(
              request, stop: { [weak self] in self?.isStopped ?? true },
              status: { status in
                // Open again: the events since the resourceVersion follow at once.
                if (200..<300).contains(status) { self.reopened() }
              }
            ) { line in
              guard let event = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                return true
              }
              if let expired = self.apply(event) {
                outcome.value = .expired(expired)
                return false
              }
              return true
            }
          })
      }
    }
    if isStopped { return .stopped }
    guard (200..<300).contains(response.status) else {
      let error = KubernetesClient.apiError(method: "GET", path: path, response: response)
      if response.status == 410 { return .expired("410 \(error.message)") }
      if response.status == 401 { await client.tokenRefused() }
      await client.refused(response)
      throw error
    }
    return outcome.value
  }

  private var isStopped: Bool { lock.withLock { stopped } }

  private func reopened() {
    lock.withLock {
      connected = true
      broken = nil
    }
  }

  /// Folds one watch event into the cache; for an ERROR event, which asks for a new LIST, its
  /// code and message, else nil.
  private func apply(_ event: [String: Any]) -> String? {
    let type = event["type"] as? String ?? ""
    let object = event["object"] as? [String: Any] ?? [:]
    let metadata = object["metadata"] as? [String: Any] ?? [:]
    let version = metadata["resourceVersion"] as? String
    switch type {
    case "ERROR":
      let code = object["code"] as? Int ?? 0
      return "\(code) \(object["message"] as? String ?? "an ERROR event")"
    case "BOOKMARK":
      lock.withLock {
        resourceVersion = version ?? resourceVersion
        connected = true
      }
    case "DELETED":
      lock.withLock {
        if let name = metadata["name"] as? String { entries[name] = nil }
        resourceVersion = version ?? resourceVersion
        connected = true
      }
    default:
      guard let (name, entry) = Self.entry(object, namespace: namespace, kindName: kindName) else {
        return nil
      }
      lock.withLock {
        if let old = entries[name], !Self.isNewer(entry.scale.metadata.resourceVersion, than: old) {
          // Older than a write of Capstan's own that is already in the cache.
        } else {
          entries[name] = entry
        }
        resourceVersion = version ?? resourceVersion
        connected = true
      }
    }
    return nil
  }

  /// Whether `version` is later than the entry's. resourceVersions are opaque by the API's
  /// rules; where both are numbers (etcd's revisions), an older one is recognised.
  static func isNewer(_ version: String?, than entry: Entry) -> Bool {
    guard let version, let new = UInt64(version),
      let held = entry.scale.metadata.resourceVersion.flatMap(UInt64.init)
    else { return true }
    return new >= held
  }

  static func entry(_ object: [String: Any], namespace: String, kindName: String) -> (String, Entry)? {
    let metadata = object["metadata"] as? [String: Any] ?? [:]
    guard let name = metadata["name"] as? String else { return nil }
    let spec = object["spec"] as? [String: Any]
    let status = object["status"] as? [String: Any]
    let scale = Scale(
      metadata: .init(
        name: name, namespace: namespace, resourceVersion: metadata["resourceVersion"] as? String),
      spec: .init(replicas: spec?["replicas"] as? Int ?? 1),
      status: .init(replicas: status?["replicas"] as? Int))
    return (
      name,
      Entry(
        scale: scale, summary: WorkloadSummary(json: object, fallbackKind: kindName),
        annotations: metadata["annotations"] as? [String: String] ?? [:])
    )
  }
}

/// A value shared with the curl thread that reads the watch.
final class LockedValue<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: Value
  init(_ value: Value) { stored = value }
  var value: Value {
    get { lock.withLock { stored } }
    set { lock.withLock { stored = newValue } }
  }
}
