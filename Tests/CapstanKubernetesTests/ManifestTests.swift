import CapstanCore
import CapstanTestKit
import Foundation
import Testing
import Yams

/// `manifests/` is applied by users as it is: it must parse, hang together, grant exactly the
/// calls Capstan makes, and carry a policy that loads.
@Suite("manifests/")
struct ManifestTests {
  static let manifests = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("manifests")
  static let folder = manifests.appendingPathComponent("base")

  static func objects() throws -> [String: [String: Any]] {
    var objects: [String: [String: Any]] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: folder.path)
    where name.hasSuffix(".yaml") && name != "kustomization.yaml" {
      let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
      for document in try Yams.load_all(yaml: text) {
        guard let object = document as? [String: Any], let kind = object["kind"] as? String else {
          throw ManifestError(description: "\(name) holds something that is not a Kubernetes object")
        }
        objects[kind] = object
      }
    }
    return objects
  }

  struct ManifestError: Error, CustomStringConvertible { var description: String }

  @Test("every object the issue names is there, in one namespace")
  func objectsPresent() throws {
    let objects = try Self.objects()
    #expect(
      Set(objects.keys)
        == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service"])
    for (kind, object) in objects where kind != "Namespace" {
      #expect((object["metadata"] as? [String: Any])?["namespace"] as? String == "capstan", "\(kind)")
    }
  }

  @Test("the Role grants exactly what Capstan calls, and the binding gives it to Capstan's service account")
  func leastPrivilege() throws {
    let objects = try Self.objects()
    let rules = try #require(objects["Role"]?["rules"] as? [[String: Any]])
    var granted: Set<String> = []
    for rule in rules {
      for group in rule["apiGroups"] as? [String] ?? [] {
        for resource in rule["resources"] as? [String] ?? [] {
          for verb in rule["verbs"] as? [String] ?? [] { granted.insert("\(verb) \(group)/\(resource)") }
        }
      }
    }
    #expect(
      granted == [
        "get apps/deployments/scale", "update apps/deployments/scale",
        "get apps/statefulsets/scale", "update apps/statefulsets/scale",
        "get apps/deployments", "get apps/statefulsets", "patch apps/deployments", "patch apps/statefulsets",
        "list apps/deployments", "list apps/statefulsets", "watch apps/deployments",
        "watch apps/statefulsets",
        "get coordination.k8s.io/leases", "create coordination.k8s.io/leases",
        "update coordination.k8s.io/leases",
        "create /events",
        "get /configmaps", "create /configmaps", "update /configmaps",
      ])
    let binding = try #require(objects["RoleBinding"])
    #expect((binding["roleRef"] as? [String: Any])?["name"] as? String == "capstan")
    let subject = (binding["subjects"] as? [[String: Any]])?.first
    #expect(subject?["kind"] as? String == "ServiceAccount")
    #expect(
      subject?["name"] as? String == (objects["ServiceAccount"]?["metadata"] as? [String: Any])?["name"]
        as? String)
  }

  @Test("the Deployment runs two Capstans with the ConfigMap's policy, and the policy elects a leader")
  func deployment() throws {
    let objects = try Self.objects()
    let deployment = try #require(objects["Deployment"])
    let spec = try #require(deployment["spec"] as? [String: Any])
    #expect(spec["replicas"] as? Int == 2)
    let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
    #expect(pod["serviceAccountName"] as? String == "capstan")
    let container = try #require((pod["containers"] as? [[String: Any]])?.first)
    let args = container["args"] as? [String] ?? []
    #expect(args.prefix(2) == ["run", "/etc/capstan/policy.yaml"])
    #expect(args.contains("--audit-log") && args.last == "-", "audit records on standard output")
    let env = container["env"] as? [[String: Any]] ?? []
    #expect(env.contains { $0["name"] as? String == "POD_NAME" })
    let volumes = pod["volumes"] as? [[String: Any]] ?? []
    let configMapName = (objects["ConfigMap"]?["metadata"] as? [String: Any])?["name"] as? String
    #expect(volumes.contains { ($0["configMap"] as? [String: Any])?["name"] as? String == configMapName })

    let policyText = try #require(
      (objects["ConfigMap"]?["data"] as? [String: Any])?["policy.yaml"] as? String)
    let loaded = try PolicyLoader.load(yaml: policyText, file: "manifests/base/configmap.yaml")
    #expect(loaded.warnings.isEmpty)
    guard case .kubernetes(let settings) = loaded.policy.backend else {
      Issue.record("the ConfigMap's policy does not use the kubernetes backend")
      return
    }
    #expect(settings.leaderElection != nil)
    #expect(settings.kubeconfig == nil, "in the pod, Capstan uses in-cluster configuration")
    #expect(loaded.policy.targets.allSatisfy { $0.kubernetes != nil })
  }

  @Test("the Service reaches the pods' metrics port")
  func service() throws {
    let objects = try Self.objects()
    let selector = ((objects["Service"]?["spec"] as? [String: Any])?["selector"] as? [String: String]) ?? [:]
    let labels =
      (((objects["Deployment"]?["spec"] as? [String: Any])?["template"] as? [String: Any])?["metadata"]
      as? [String: Any])?["labels"] as? [String: String] ?? [:]
    #expect(!selector.isEmpty)
    #expect(selector.allSatisfy { labels[$0.key] == $0.value })
    let port = ((objects["Service"]?["spec"] as? [String: Any])?["ports"] as? [[String: Any]])?.first
    #expect(port?["targetPort"] as? String == "metrics")
  }

  static let kubectl = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].first {
    FileManager.default.isExecutableFile(atPath: $0)
  }

  @Test("the kustomization lists every manifest, once")
  func kustomizationLists() throws {
    let text = try String(
      contentsOf: Self.folder.appendingPathComponent("kustomization.yaml"), encoding: .utf8)
    let kustomization = try #require(try Yams.load(yaml: text) as? [String: Any])
    let listed = try #require(kustomization["resources"] as? [String])
    let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter {
      $0.hasSuffix(".yaml") && $0 != "kustomization.yaml"
    }
    #expect(listed.sorted() == files.sorted())
    #expect(Set(listed).count == listed.count)
  }

  /// `kubectl kustomize FOLDER`, parsed.
  static func kustomize(_ folder: URL) throws -> [[String: Any]] {
    let result = try runProgram(try #require(kubectl), ["kustomize", folder.path], timeout: 60)
    #expect(result.status == 0, "\(result.stderr)")
    return try Yams.load_all(yaml: result.stdout).compactMap { $0 as? [String: Any] }
  }

  @Test("kubectl kustomize renders the seven objects", .enabled(if: kubectl != nil))
  func kustomizeRenders() throws {
    for folder in [Self.manifests, Self.folder] {
      let kinds = try Self.kustomize(folder).compactMap { $0["kind"] as? String }
      #expect(
        kinds.sorted()
          == ["ConfigMap", "Deployment", "Namespace", "Role", "RoleBinding", "Service", "ServiceAccount"])
    }
  }

  @Test(
    "manifests/keda: one Capstan serving the external scaler, a Service KEDA reaches it by, and a ScaledObject naming a process of the policy",
    .enabled(if: kubectl != nil))
  func kedaOverlay() throws {
    let objects = try Self.kustomize(Self.manifests.appendingPathComponent("keda"))
    func named(_ kind: String, _ name: String) -> [String: Any]? {
      objects.first {
        $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name
      }
    }
    let deployment = try #require(named("Deployment", "capstan"))
    let spec = try #require(deployment["spec"] as? [String: Any])
    #expect(spec["replicas"] as? Int == 1)
    let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
    let container = try #require((pod["containers"] as? [[String: Any]])?.first)
    let args = container["args"] as? [String] ?? []
    let flag = try #require(args.firstIndex(of: "--keda-scaler"))
    #expect(args.indices.contains(flag + 1) && args[flag + 1] == "0.0.0.0:9465", "\(args)")
    let ports = container["ports"] as? [[String: Any]] ?? []
    #expect(ports.contains { $0["name"] as? String == "keda" && $0["containerPort"] as? Int == 9465 })

    let service = try #require(named("Service", "capstan-keda"))
    let servicePort = ((service["spec"] as? [String: Any])?["ports"] as? [[String: Any]])?.first
    #expect(servicePort?["targetPort"] as? String == "keda")
    #expect(servicePort?["port"] as? Int == 9465)

    let scaled = try #require(objects.first { $0["kind"] as? String == "ScaledObject" })
    #expect(scaled["apiVersion"] as? String == "keda.sh/v1alpha1")
    let trigger = try #require(
      ((scaled["spec"] as? [String: Any])?["triggers"] as? [[String: Any]])?.first)
    #expect(trigger["type"] as? String == "external")
    let metadata = trigger["metadata"] as? [String: Any] ?? [:]
    #expect(metadata["scalerAddress"] as? String == "capstan-keda.capstan.svc:9465")
    let configMap = try #require(named("ConfigMap", "capstan-policy"))
    let policyText = try #require((configMap["data"] as? [String: Any])?["policy.yaml"] as? String)
    let policy = try PolicyLoader.load(yaml: policyText, file: "manifests/base/configmap.yaml").policy
    let process = try #require(metadata["process"] as? String)
    let target = try #require(policy.target(named: process))
    let targetRef = (scaled["spec"] as? [String: Any])?["scaleTargetRef"] as? [String: Any]
    #expect(targetRef?["name"] as? String == target.kubernetes?.name)
    #expect((scaled["spec"] as? [String: Any])?["maxReplicaCount"] as? Int == target.max)
    #expect((scaled["spec"] as? [String: Any])?["minReplicaCount"] as? Int == target.min)
  }
}
