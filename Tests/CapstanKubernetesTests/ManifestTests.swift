import CapstanCore
import Foundation
import Testing
import Yams

/// `manifests/` is applied by users as it is: it must parse, hang together, grant exactly the
/// calls Capstan makes, and carry a policy that loads.
@Suite("manifests/")
struct ManifestTests {
  static let folder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("manifests")

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
    let loaded = try PolicyLoader.load(yaml: policyText, file: "manifests/configmap.yaml")
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

  @Test("kubectl kustomize renders the seven objects", .enabled(if: kubectl != nil))
  func kustomizeRenders() throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(Self.kubectl))
    process.arguments = ["kustomize", Self.folder.path]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    let kinds = try Yams.load_all(yaml: String(decoding: data, as: UTF8.self)).compactMap {
      ($0 as? [String: Any])?["kind"] as? String
    }
    #expect(
      kinds.sorted()
        == ["ConfigMap", "Deployment", "Namespace", "Role", "RoleBinding", "Service", "ServiceAccount"])
  }
}
