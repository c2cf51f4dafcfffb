import CapstanHTTP
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The project's stand-in for a Kubernetes API server (`Tests/Support/test-apiserver.py`) on a
/// free loopback port, over HTTPS with a CA made for the test. The test sets its tokens,
/// workloads and faults, and reads back the requests it answered.
public final class KubernetesAPIServer: @unchecked Sendable {
  public let port: Int
  public let folder: URL
  private var process: Process?

  public struct Failure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
  }

  public init() throws {
    folder = try scratchDirectory("apiserver")
    try Self.makeCertificates(in: folder)
    port = try freePort()
    let script = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Tests/Support/test-apiserver.py")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
      "python3", script.path, "--port", String(port), "--cert", path("server.crt"), "--key",
      path("server.key"), "--client-ca", path("ca.crt"),
    ]
    // Its output goes to a file in its folder, never to the test runner's: a server left behind
    // by a crashed test process would otherwise hold the runner's output open, and whatever
    // reads it to the end would wait for ever.
    let log = folder.appendingPathComponent("server.log")
    try Data().write(to: log)
    // One handle for both, so the two streams share an offset instead of writing over each other.
    let output = try FileHandle(forWritingTo: log)
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    try process.run()
    self.process = process
  }

  public var url: String { "https://127.0.0.1:\(port)" }
  public var caFile: String { path("ca.crt") }
  /// A client certificate and key the server accepts, for the user `capstan-client`.
  public var clientCertificate: (certificate: String, key: String) {
    (path("client.crt"), path("client.key"))
  }

  public func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

  public func ready() async -> Bool { await eventually { acceptsConnections(port: self.port) } }

  // MARK: Setting it up

  /// Valid bearer tokens and the users they stand for; any other token gets 401.
  public func setTokens(_ tokens: [String: String]) async throws {
    try await control("/_test/tokens", tokens)
  }

  /// What each user may not do, as "VERB RESOURCE" ("update deployments/scale"): 403.
  public func forbid(_ rules: [String: [String]]) async throws {
    try await control("/_test/forbidden", rules)
  }

  public struct Fault: Encodable, Sendable {
    public var method: String?
    /// A regular expression on the request path.
    public var path: String
    public var status: Int?
    public var retryAfter: Int?
    /// Seconds before answering.
    public var delay: Double?
    /// Someone else sets the object's replicas to this just before the request is served.
    public var raceReplicas: Int?
    public var count: Int

    public init(
      method: String? = nil, path: String, status: Int? = nil, retryAfter: Int? = nil, delay: Double? = nil,
      raceReplicas: Int? = nil, count: Int = 1
    ) {
      self.method = method
      self.path = path
      self.status = status
      self.retryAfter = retryAfter
      self.delay = delay
      self.raceReplicas = raceReplicas
      self.count = count
    }

    enum CodingKeys: String, CodingKey {
      case method, path, status, delay, count
      case retryAfter = "retry_after"
      case raceReplicas = "race_replicas"
    }
  }

  /// The next matching requests fail or are slow as described, instead of being served.
  public func setFaults(_ faults: [Fault]) async throws { try await control("/_test/faults", faults) }

  /// A custom resource type with a /scale subresource, as GROUP/VERSION/PLURAL → Kind.
  public func addCustomKind(_ groupVersionPlural: String, kind: String) async throws {
    try await control("/_test/custom-kinds", [groupVersionPlural: kind])
  }

  public struct Workload: Encodable, Sendable {
    var api: String
    var plural: String
    var namespace: String
    var name: String
    var replicas: Int
    var grace: Int?
    var ready: Int?
  }

  /// A workload whose pods are ready as soon as they are asked for, or, with `ready`, one with
  /// only that many ready so far.
  public func addWorkload(
    api: String = "apis/apps/v1", plural: String = "deployments", namespace: String = "default", name: String,
    replicas: Int, terminationGracePeriodSeconds: Int? = nil, ready: Int? = nil
  ) async throws {
    try await control(
      "/_test/workloads",
      Workload(
        api: api, plural: plural, namespace: namespace, name: name, replicas: replicas,
        grace: terminationGracePeriodSeconds, ready: ready))
  }

  /// Removes a workload, as `kubectl delete` would; watches see it DELETED.
  public func deleteWorkload(
    api: String = "apis/apps/v1", plural: String = "deployments", namespace: String = "default", name: String
  ) async throws {
    try await control("/_test/delete", ["api": api, "plural": plural, "namespace": namespace, "name": name])
  }

  /// Every open watch is cut without a word, as when the API server's process dies.
  public func dropWatches() async throws { try await control("/_test/drop-watches", [String: String]()) }

  /// The watch history is forgotten, as etcd's compaction forgets it: a watch from an older
  /// resourceVersion is answered 410 Expired.
  public func forgetHistory() async throws { try await control("/_test/forget-history", [String: String]()) }

  // MARK: Reading it back

  public struct Request: Decodable, Sendable {
    public var time: Double
    public var method: String
    public var path: String
    public var user: String?
    public var status: Int?
    /// A WATCH, which stays open and streams.
    public var watch: Bool?
  }

  public func requests() async throws -> [Request] {
    try JSONDecoder().decode([Request].self, from: try await call("GET", "/_test/requests", nil))
  }

  /// Every object it holds, as JSON.
  public func objects() async throws -> [[String: Any]] {
    let data = try await call("GET", "/_test/objects", nil)
    return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
  }

  public func object(_ kind: String, named name: String) async throws -> [String: Any]? {
    try await objects().first {
      $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name
    }
  }

  /// `spec.replicas` of a workload, as `kubectl get` would show it.
  public func replicas(_ kind: String, named name: String) async throws -> Int? {
    (try await object(kind, named: name)?["spec"] as? [String: Any])?["replicas"] as? Int
  }

  /// An API call as a user, as kubectl would make it (a person scaling by hand).
  @discardableResult
  public func api(_ method: String, _ path: String, token: String, body: String? = nil) async throws
    -> HTTPResponse
  {
    try await CurlHTTPClient.send(
      HTTPRequest(
        method: method, url: url + path,
        headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
        body: body.map { Data($0.utf8) }, timeout: 10, ca: .file(caFile)))
  }

  /// A kubeconfig for this server: with a token, a token file, or the client certificate.
  public func kubeconfig(user: String, namespace: String = "default", context: String = "test") -> String {
    """
    apiVersion: v1
    kind: Config
    current-context: \(context)
    clusters:
    - name: test
      cluster:
        server: \(url)
        certificate-authority: \(caFile)
    contexts:
    - name: \(context)
      context: {cluster: test, user: capstan, namespace: \(namespace)}
    users:
    - name: capstan
      user:
    \(user.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
    """
  }

  public func stop() {
    if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
  }

  deinit {
    stop()
    try? FileManager.default.removeItem(at: folder)
  }

  // MARK: Plumbing

  private func control(_ path: String, _ body: some Encodable) async throws {
    _ = try await call("POST", path, try JSONEncoder().encode(body))
  }

  private func call(_ method: String, _ path: String, _ body: Data?) async throws -> Data {
    let response = try await CurlHTTPClient.send(
      HTTPRequest(method: method, url: url + path, body: body, timeout: 10, ca: .file(caFile)))
    guard response.status == 200 else {
      throw Failure(
        description: "\(method) \(path): \(response.status) \(String(decoding: response.body, as: UTF8.self))"
      )
    }
    return response.body
  }

  /// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
  private static func makeCertificates(in folder: URL) throws {
    let script = """
      set -e
      openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca
      openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
      printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
      openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=capstan-client
      openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2
      """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    process.currentDirectoryURL = folder
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    while process.isRunning { usleep(10_000) }
    guard process.terminationStatus == 0 else {
      throw Failure(
        description: "openssl could not make the test certificates: run scripts/install-deps test")
    }
  }
}
