import CapstanCore
import CapstanHTTP
import Foundation
import Testing

@testable import CapstanKubernetes

@Suite("Kubernetes connection: kubeconfig and in-cluster")
struct KubernetesConnectionTests {
  static let caPEM = Data("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8)

  func write(_ text: String, _ name: String, in folder: URL) throws -> String {
    let url = folder.appendingPathComponent(name)
    try text.write(to: url, atomically: true, encoding: .utf8)
    return url.path
  }

  @Test("contexts, current-context, token, CA data, and relative paths resolved from the file's folder")
  func kubeconfig() throws {
    let folder = try scratch()
    let path = try write(
      """
      apiVersion: v1
      kind: Config
      current-context: dev
      clusters:
      - name: dev
        cluster:
          server: https://10.0.0.1:6443/
          certificate-authority-data: \(Self.caPEM.base64EncodedString())
      - name: prod
        cluster: {server: https://prod.example:6443, certificate-authority: certs/ca.crt}
      contexts:
      - name: dev
        context: {cluster: dev, user: dev-user, namespace: ml}
      - name: prod
        context: {cluster: prod, user: prod-user}
      users:
      - name: dev-user
        user: {token: secret-dev}
      - name: prod-user
        user: {tokenFile: tokens/prod, client-certificate: certs/client.crt, client-key: certs/client.key}
      """, "config", in: folder)
    let dev = try KubernetesConnection.fromKubeconfig(files: [path], context: nil)
    #expect(dev.server == "https://10.0.0.1:6443")
    #expect(dev.ca == .pem(Self.caPEM))
    #expect(dev.token == .literal("secret-dev"))
    #expect(dev.namespace == "ml")
    #expect(!dev.insecureSkipTLSVerify)
    let prod = try KubernetesConnection.fromKubeconfig(files: [path], context: "prod")
    #expect(prod.ca == .file(folder.appendingPathComponent("certs/ca.crt").path))
    #expect(prod.token == .file(folder.appendingPathComponent("tokens/prod").path))
    #expect(prod.clientCertificate == .file(folder.appendingPathComponent("certs/client.crt").path))
    #expect(prod.clientKey == .file(folder.appendingPathComponent("certs/client.key").path))
    #expect(prod.namespace == nil)
  }

  @Test("a KUBECONFIG list merges as kubectl does: the first definition and current-context win")
  func merge() throws {
    let folder = try scratch()
    let first = try write(
      """
      current-context: a
      contexts:
      - {name: a, context: {cluster: one, user: u}}
      users:
      - {name: u, user: {token: first}}
      """, "first", in: folder)
    let second = try write(
      """
      current-context: b
      clusters:
      - {name: one, cluster: {server: "https://one:6443", insecure-skip-tls-verify: true}}
      users:
      - {name: u, user: {token: second}}
      """, "second", in: folder)
    let connection = try KubernetesConnection.resolve(
      KubernetesSettings(), baseDirectory: folder,
      environment: ["KUBECONFIG": "\(first):\(folder.path)/missing:\(second)", "HOME": folder.path])
    #expect(connection.server == "https://one:6443")
    #expect(connection.token == .literal("first"))
    #expect(connection.insecureSkipTLSVerify)
  }

  @Test(
    "what is wrong with a kubeconfig, and what to do",
    arguments: [
      ("current-context: x\n", nil, "has no context 'x'"),
      (
        "contexts: [{name: a, context: {cluster: c}}]\n", nil,
        "has no current-context: give kubernetes.context"
      ),
      ("contexts: [{name: a, context: {cluster: c}}]\n", "a", "names cluster 'c', which is not defined"),
      (
        "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'https://c'}}]\nusers: [{name: u, user: {exec: {command: aws, args: [eks, get-token]}}}]\n",
        nil, "exec plugin or auth provider, which Capstan does not run"
      ),
      (
        "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'https://c'}}]\nusers: [{name: u, user: {client-certificate: c.crt}}]\n",
        nil, "a client certificate without its key"
      ),
      ("clusters: {not: a list}\n", nil, "is not valid: .clusters"),
    ] as [(String, String?, String)])
  func problems(yaml: String, context: String?, message: String) throws {
    let folder = try scratch()
    let path = try write(yaml, "config", in: folder)
    #expect {
      try KubernetesConnection.fromKubeconfig(files: [path], context: context)
    } throws: { error in
      "\(error)".contains(message)
    }
  }

  @Test("no kubeconfig anywhere says where it looked and what to do")
  func missing() throws {
    let folder = try scratch()
    #expect {
      try KubernetesConnection.resolve(
        KubernetesSettings(), baseDirectory: folder, environment: ["HOME": folder.path])
    } throws: { error in
      "\(error)"
        == "no kubeconfig at \(folder.path)/.kube/config: give kubernetes.kubeconfig in the policy, set KUBECONFIG, or run in a cluster"
    }
  }

  @Test(
    "in a pod: the service host and port, the token file, CA and namespace; a kubeconfig named in the policy wins"
  )
  func inCluster() throws {
    let folder = try scratch()
    _ = try write("token-1\n", "token", in: folder)
    _ = try write("ai-serving\n", "namespace", in: folder)
    let environment = [
      "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOME": folder.path,
    ]
    let connection = try KubernetesConnection.resolve(
      KubernetesSettings(), baseDirectory: folder, environment: environment, serviceAccountDirectory: folder)
    #expect(connection.server == "https://10.96.0.1:443")
    #expect(connection.token == .file(folder.appendingPathComponent("token").path))
    #expect(connection.ca == .file(folder.appendingPathComponent("ca.crt").path))
    #expect(connection.namespace == "ai-serving")
    #expect(connection.origin == "in-cluster")
    _ = try write(
      "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://c:6443'}}]\n",
      "kubeconfig", in: folder)
    let named = try KubernetesConnection.resolve(
      KubernetesSettings(kubeconfig: "kubeconfig"), baseDirectory: folder, environment: environment,
      serviceAccountDirectory: folder)
    #expect(named.server == "https://c:6443")
  }

  @Test("an IPv6 service host is bracketed; a pod without a token says what to mount")
  func inClusterEdges() throws {
    let folder = try scratch()
    #expect {
      try KubernetesConnection.inCluster(
        environment: ["KUBERNETES_SERVICE_HOST": "fd00::1"], directory: folder)
    } throws: { error in
      "\(error)".contains("automountServiceAccountToken: true")
    }
    _ = try write("t", "token", in: folder)
    let connection = try KubernetesConnection.inCluster(
      environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"],
      directory: folder)
    #expect(connection.server == "https://[fd00::1]:6443")
    #expect(connection.namespace == nil)
  }

  func scratch() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "capstan-kubeconfig-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }
}
