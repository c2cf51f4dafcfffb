import Foundation

/// How Capstan reaches a Kubernetes API server, and whether it elects a leader there.
public struct KubernetesSettings: Sendable, Equatable {
  /// A kubeconfig file (relative to the policy's folder, `~` allowed). Without it: `KUBECONFIG`,
  /// then in-cluster configuration when `KUBERNETES_SERVICE_HOST` is set, then `~/.kube/config`.
  public var kubeconfig: String?
  /// The kubeconfig context; default its `current-context`.
  public var context: String?
  /// Where targets and the Lease live unless they say otherwise; default the context's namespace,
  /// the pod's own namespace in a cluster, or `default`.
  public var namespace: String?
  public var leaderElection: LeaderElectionSettings?
  /// Requests a second to the API server, on average, for the scaling calls; client-go's and
  /// KEDA's operator's default is 20. Leader election has a client of its own, unlimited, so a
  /// busy tick never delays a renewal.
  public var qps: Double = 20
  /// Requests that may go at once after a quiet spell, above `qps`; default 30.
  public var burst: Int = 30

  public init(
    kubeconfig: String? = nil, context: String? = nil, namespace: String? = nil,
    leaderElection: LeaderElectionSettings? = nil
  ) {
    self.kubeconfig = kubeconfig
    self.context = context
    self.namespace = namespace
    self.leaderElection = leaderElection
  }
}

/// client-go's leader election on a `coordination.k8s.io/v1` Lease, with its defaults.
public struct LeaderElectionSettings: Sendable, Equatable {
  public var lease: String = "capstan"
  public var namespace: String?
  /// How long followers wait, from the last change they saw, before taking the lease.
  public var leaseDuration: TimeInterval = 15
  /// A leader that has not renewed for this long stops acting.
  public var renewDeadline: TimeInterval = 10
  /// How often the lease is tried or renewed.
  public var retryPeriod: TimeInterval = 2

  public init() {}
}

/// The workload a process scales, through its `/scale` subresource.
public struct KubernetesWorkload: Sendable, Equatable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    case deployment
    case statefulSet
    /// A custom resource with a scale subresource, such as `ray.io/v1/rayclusters`.
    case custom(group: String, version: String, plural: String)
  }

  public var kind: Kind
  public var name: String
  /// Nil: the backend's namespace (the policy's, the context's, or the pod's).
  public var namespace: String?

  public init(kind: Kind, name: String, namespace: String? = nil) {
    self.kind = kind
    self.name = name
    self.namespace = namespace
  }

  public var description: String {
    switch kind {
    case .deployment: return "deployment/\(name)"
    case .statefulSet: return "statefulset/\(name)"
    case .custom(let group, _, let plural): return "\(plural).\(group)/\(name)"
    }
  }
}

struct RawKubernetes: Decodable {
  var kubeconfig, context, namespace, qps, burst: RawScalar?
  var leaderElection: RawLeaderElection?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case kubeconfig, context, namespace, qps, burst
    case leaderElection = "leader_election"
  }
}

struct RawLeaderElection: Decodable {
  var lease, namespace, leaseDuration, renewDeadline, retryPeriod: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case lease, namespace
    case leaseDuration = "lease_duration", renewDeadline = "renew_deadline"
    case retryPeriod = "retry_period"
  }
}

struct RawKubernetesWorkload: Decodable {
  var kind, name, namespace: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable { case kind, name, namespace }
}

extension PolicyValidator {
  func validateKubernetes(_ raw: RawKubernetes?) -> KubernetesSettings {
    var settings = KubernetesSettings()
    guard let raw else { return settings }
    settings.kubeconfig = raw.kubeconfig?.text
    settings.context = raw.context?.text
    settings.namespace = raw.namespace.flatMap { kubernetesName($0, "namespace", label: true) }
    if let rawQPS = raw.qps, let qps = positive(rawQPS, "requests a second") { settings.qps = qps }
    if let rawBurst = raw.burst, let burst = count(rawBurst, "requests") {
      if burst < 1 {
        sink.error(rawBurst.location, "burst is \(rawBurst.text): at least 1 request must be able to go")
      } else {
        settings.burst = burst
      }
    }
    if let rawElection = raw.leaderElection {
      var election = LeaderElectionSettings()
      if let lease = rawElection.lease, let name = kubernetesName(lease, "leader_election.lease") {
        election.lease = name
      }
      election.namespace = rawElection.namespace.flatMap {
        kubernetesName($0, "leader_election.namespace", label: true)
      }
      if let raw = rawElection.leaseDuration, let value = positiveDuration(raw) {
        election.leaseDuration = value
      }
      if let raw = rawElection.renewDeadline, let value = positiveDuration(raw) {
        election.renewDeadline = value
      }
      if let raw = rawElection.retryPeriod, let value = positiveDuration(raw) { election.retryPeriod = value }
      // client-go's own checks: a leader must give up before followers may take over, and must
      // get more than one try at renewing before it does.
      let at =
        rawElection.renewDeadline?.location ?? rawElection.leaseDuration?.location
        ?? FileLocation(file: file, line: 1, column: 1)
      if election.renewDeadline >= election.leaseDuration {
        sink.error(
          at,
          "renew_deadline (\(Ceilings.format(election.renewDeadline))s) must be shorter than lease_duration (\(Ceilings.format(election.leaseDuration))s), or two leaders could act at once"
        )
      } else if election.retryPeriod * 1.2 >= election.renewDeadline {
        sink.error(
          rawElection.retryPeriod?.location ?? at,
          "retry_period (\(Ceilings.format(election.retryPeriod))s) leaves no second try within renew_deadline (\(Ceilings.format(election.renewDeadline))s): make it shorter"
        )
      }
      settings.leaderElection = election
    }
    return settings
  }

  func validateWorkload(_ raw: RawKubernetesWorkload, process: RawScalar) -> KubernetesWorkload? {
    var kind = KubernetesWorkload.Kind.deployment
    if let rawKind = raw.kind {
      switch rawKind.text {
      case "Deployment": kind = .deployment
      case "StatefulSet": kind = .statefulSet
      default:
        let parts = rawKind.text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }), parts[2] == parts[2].lowercased() else {
          sink.error(
            rawKind.location,
            "kind is '\(rawKind.text)': use Deployment, StatefulSet, or GROUP/VERSION/PLURAL for a custom resource with a /scale subresource, such as ray.io/v1/rayclusters"
          )
          return nil
        }
        kind = .custom(group: parts[0], version: parts[1], plural: parts[2])
      }
    }
    let name = raw.name.map { kubernetesName($0, "kubernetes.name") } ?? defaultWorkloadName(process)
    guard let name else { return nil }
    return KubernetesWorkload(
      kind: kind, name: name,
      namespace: raw.namespace.flatMap { kubernetesName($0, "namespace", label: true) })
  }

  /// A process with no `kubernetes:` scales the Deployment of its own name.
  func defaultWorkloadName(_ process: RawScalar) -> String? {
    kubernetesName(
      process, "process name", hint: ", or add kubernetes: {name: ...} naming the workload")
  }

  /// RFC 1123: a DNS subdomain for object names, a DNS label for namespaces.
  private func kubernetesName(_ raw: RawScalar, _ what: String, label: Bool = false, hint: String = "")
    -> String?
  {
    let text = raw.text
    let allowed = label ? "abcdefghijklmnopqrstuvwxyz0123456789-" : "abcdefghijklmnopqrstuvwxyz0123456789-."
    let valid =
      !text.isEmpty && text.count <= (label ? 63 : 253) && text.allSatisfy { allowed.contains($0) }
      && text.first?.isLetterOrDigit == true && text.last?.isLetterOrDigit == true
    guard valid else {
      sink.error(
        raw.location,
        "\(what) '\(text)' is not a Kubernetes \(label ? "namespace" : "name"): use lowercase letters, digits and '-'\(label ? "" : " or '.'"), starting and ending with a letter or digit\(hint)"
      )
      return nil
    }
    return text
  }
}

extension Character {
  fileprivate var isLetterOrDigit: Bool { isASCII && (isLetter || isNumber) }
}
