import CapstanCore
import Foundation

/// The `/scale` subresource (autoscaling/v1 Scale) and the workload object behind it.
public struct Scale: Codable, Sendable, Equatable {
  public struct Metadata: Codable, Sendable, Equatable {
    public var name: String
    public var namespace: String?
    public var resourceVersion: String?
  }
  public struct Spec: Codable, Sendable, Equatable { public var replicas: Int? }
  public struct Status: Codable, Sendable, Equatable {
    /// Observed replicas: the ready count of a custom resource that reports no readyReplicas.
    public var replicas: Int?
  }

  public var apiVersion: String? = "autoscaling/v1"
  public var kind: String? = "Scale"
  public var metadata: Metadata
  public var spec: Spec
  public var status: Status?

  /// Desired replicas.
  public var desired: Int { spec.replicas ?? 0 }
}

/// What Capstan reads of the workload itself: who it is (for Events), how many pods are ready,
/// and how long its pods may take to stop.
public struct WorkloadSummary: Sendable, Equatable {
  public var apiVersion: String
  public var kind: String
  public var uid: String?
  public var readyReplicas: Int?
  /// The pod template's terminationGracePeriodSeconds; Kubernetes' default is 30.
  public var terminationGracePeriod: TimeInterval

  init(json: [String: Any], fallbackKind: String) {
    apiVersion = json["apiVersion"] as? String ?? ""
    kind = json["kind"] as? String ?? fallbackKind
    uid = (json["metadata"] as? [String: Any])?["uid"] as? String
    readyReplicas = (json["status"] as? [String: Any])?["readyReplicas"] as? Int
    let template =
      ((json["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any]
    terminationGracePeriod = TimeInterval(template?["terminationGracePeriodSeconds"] as? Int ?? 30)
  }
}

extension KubernetesWorkload {
  /// The kind's collection in `namespace`, such as `/apis/apps/v1/namespaces/ai/deployments`,
  /// which also keys per-collection state.
  public func collectionPath(namespace: String) -> String {
    switch kind {
    case .deployment: return "/apis/apps/v1/namespaces/\(namespace)/deployments"
    case .statefulSet: return "/apis/apps/v1/namespaces/\(namespace)/statefulsets"
    case .custom(let group, let version, let plural):
      return "/apis/\(group)/\(version)/namespaces/\(namespace)/\(plural)"
    }
  }

  public func objectPath(namespace: String) -> String { collectionPath(namespace: namespace) + "/\(name)" }
  public func scalePath(namespace: String) -> String { objectPath(namespace: namespace) + "/scale" }

  var kindName: String {
    switch kind {
    case .deployment: return "Deployment"
    case .statefulSet: return "StatefulSet"
    case .custom(_, _, let plural): return plural
    }
  }
}

/// The calls the Kubernetes backend makes, over one client.
public struct WorkloadAPI: Sendable {
  public let client: KubernetesClient

  public init(client: KubernetesClient) { self.client = client }

  public func scale(of workload: KubernetesWorkload, namespace: String) async throws -> Scale {
    let data = try await client.send("GET", workload.scalePath(namespace: namespace))
    return try decode(Scale.self, data, what: "the Scale of \(workload)")
  }

  /// Writes `replicas` carrying the resourceVersion that was read; a stale one is a 409.
  public func setScale(_ read: Scale, replicas: Int, of workload: KubernetesWorkload, namespace: String)
    async throws -> Scale
  {
    let written = Scale(
      metadata: .init(
        name: read.metadata.name, namespace: namespace, resourceVersion: read.metadata.resourceVersion),
      spec: .init(replicas: replicas), status: nil)
    let data = try await client.send(
      "PUT", workload.scalePath(namespace: namespace), body: try JSONEncoder().encode(written))
    return try decode(Scale.self, data, what: "the Scale of \(workload)")
  }

  public func summary(of workload: KubernetesWorkload, namespace: String) async throws -> WorkloadSummary {
    let data = try await client.send("GET", workload.objectPath(namespace: namespace))
    guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw KubernetesAPIError(
        method: "GET", path: workload.objectPath(namespace: namespace), status: 200, reason: "",
        message: "the answer is not a JSON object")
    }
    return WorkloadSummary(json: json, fallbackKind: workload.kindName)
  }

  /// Sets one annotation on the workload with a merge patch, leaving everything else as it is
  /// (the pod template is not touched, so no pod restarts).
  public func annotate(_ workload: KubernetesWorkload, namespace: String, key: String, value: String)
    async throws
  {
    let patch: [String: Any] = ["metadata": ["annotations": [key: value]]]
    _ = try await client.send(
      "PATCH", workload.objectPath(namespace: namespace),
      body: try JSONSerialization.data(withJSONObject: patch, options: [.sortedKeys]))
  }

  /// A core/v1 Event on the workload, as the HPA writes them, so `kubectl describe` shows why.
  public func recordEvent(
    on workload: KubernetesWorkload, summary: WorkloadSummary, namespace: String, reason: String,
    message: String,
    warning: Bool, reporter: String, now: Date
  ) async throws {
    let time = Self.timestamp(now)
    let event: [String: Any] = [
      "apiVersion": "v1", "kind": "Event",
      "metadata": [
        "name": "\(workload.name).\(String(UInt64(now.timeIntervalSince1970 * 1e9), radix: 16))",
        "namespace": namespace,
      ],
      "involvedObject": [
        "apiVersion": summary.apiVersion, "kind": summary.kind, "name": workload.name, "namespace": namespace,
        "uid": summary.uid ?? "",
      ],
      "reason": reason, "message": message, "type": warning ? "Warning" : "Normal", "count": 1,
      "firstTimestamp": time, "lastTimestamp": time, "source": ["component": "capstan"],
      "reportingComponent": "capstan", "reportingInstance": reporter,
    ]
    let body = try JSONSerialization.data(withJSONObject: event, options: [.sortedKeys])
    // One try, quickly: an Event is for people reading later; it must never hold up scaling.
    _ = try await client.send(
      "POST", "/api/v1/namespaces/\(namespace)/events", body: body, attempts: 1, patience: 0)
  }

  static func timestamp(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: date)
  }

  private func decode<T: Decodable>(_ type: T.Type, _ data: Data, what: String) throws -> T {
    do {
      return try JSONDecoder().decode(type, from: data)
    } catch {
      throw KubernetesAPIError(
        method: "GET", path: what, status: 200, reason: "", message: "the answer is not \(what): \(error)")
    }
  }
}
