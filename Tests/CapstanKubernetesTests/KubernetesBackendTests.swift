import CapstanBackends
import CapstanCore
import CapstanHTTP
import CapstanTestKit
import Foundation
import Logging
import Testing

@testable import CapstanKubernetes

@Suite("Kubernetes backend against the test API server", .serialized)
struct KubernetesBackendTests {
  func backend(_ fixture: APIFixture, leader: (any LeaderGate)? = nil) -> KubernetesBackend {
    KubernetesBackend(
      api: fixture.api, namespace: "default", leader: leader, reporter: "capstan-test",
      logger: Logger(label: "test"))
  }

  @Test(
    "a share is a merge-patched annotation on the workload: nothing else changes, the pod template included")
  func shareAnnotation() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(
      api: "apis/apps/v1", plural: "deployments", name: "agents", replicas: 3)
    let before = try #require(
      try await fixture.server.objects().first { $0["kind"] as? String == "Deployment" })
    let backend = backend(fixture)
    let agents = try target("agents", KubernetesWorkload(kind: .deployment, name: "agents"))
    try await backend.publish(
      WorkerShare(
        process: "agents", provider: "llm", replicas: 3, requestsPerMinute: 160, tokensPerMinute: nil,
        concurrentRequests: 4), for: agents)
    let after = try #require(
      try await fixture.server.objects().first { $0["kind"] as? String == "Deployment" })
    let annotations = (after["metadata"] as? [String: Any])?["annotations"] as? [String: String]
    #expect(
      annotations?[KubernetesBackend.shareAnnotation]
        == #"{"concurrent_requests":4,"process":"agents","provider":"llm","replicas":3,"requests_per_minute":160}"#
    )
    #expect(
      NSDictionary(dictionary: after["spec"] as? [String: Any] ?? [:])
        == NSDictionary(dictionary: before["spec"] as? [String: Any] ?? [:]))
    let patch = try #require(try await fixture.server.requests().first { $0.method == "PATCH" })
    #expect(patch.path == "/apis/apps/v1/namespaces/default/deployments/agents")
  }

  @Test(
    "reads and writes /scale of a Deployment, a StatefulSet and a custom resource, with an Event each",
    arguments: [
      ("apis/apps/v1", "deployments", KubernetesWorkload.Kind.deployment, "Deployment"),
      ("apis/apps/v1", "statefulsets", .statefulSet, "StatefulSet"),
      (
        "apis/ray.io/v1", "rayclusters", .custom(group: "ray.io", version: "v1", plural: "rayclusters"),
        "RayCluster"
      ),
    ])
  func scaleEachKind(api: String, plural: String, kind: KubernetesWorkload.Kind, kindName: String)
    async throws
  {
    let fixture = try await APIFixture.start()
    if case .custom = kind {
      try await fixture.server.addCustomKind("ray.io/v1/rayclusters", kind: "RayCluster")
    }
    try await fixture.server.addWorkload(api: api, plural: plural, name: "web", replicas: 2)
    let backend = backend(fixture)
    let web = try target("web", KubernetesWorkload(kind: kind, name: "web"))
    #expect(try await backend.status(of: web) == ReplicaStatus(current: 2, ready: 2))
    try await backend.apply(
      ScaleAction(
        process: "web", from: 2, to: 5, reason: .targetTracking, drainTimeout: 30, detail: "q 50 vs 10"),
      to: web)
    #expect(try await fixture.server.replicas(kindName, named: "web") == 5)
    #expect(try await backend.status(of: web) == ReplicaStatus(current: 5, ready: 5))
    try await backend.apply(
      ScaleAction(
        process: "web", from: 5, to: 3, reason: .targetTracking, drainTimeout: 30, detail: "q 30 vs 10"),
      to: web)
    #expect(try await fixture.server.replicas(kindName, named: "web") == 3)

    // Events are written off the action's path: wait for both.
    var events: [[String: Any]] = []
    _ = await eventually {
      events = (try? await fixture.server.objects().filter { $0["kind"] as? String == "Event" }) ?? []
      return events.count == 2
    }
    #expect(events.map { $0["reason"] as? String } == ["SuccessfulRescale", "SuccessfulRescale"])
    #expect(events.first?["message"] as? String == "New size: 5; reason: target_tracking: q 50 vs 10")
    let involved = events.first?["involvedObject"] as? [String: Any]
    #expect(involved?["kind"] as? String == kindName)
    #expect(involved?["name"] as? String == "web")
    #expect(involved?["uid"] as? String == "uid-web")
    // Every write carried the resourceVersion that was read.
    let writes = try await fixture.server.requests().filter { $0.method == "PUT" }
    #expect(writes.map(\.status) == [200, 200])
  }

  @Test("from zero: the API leaves readyReplicas out, which is 0 ready, not the Scale's count")
  func fromZero() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "batch", replicas: 0)
    let backend = backend(fixture)
    let batch = try target("batch", KubernetesWorkload(kind: .deployment, name: "batch"))
    #expect(try await backend.status(of: batch) == ReplicaStatus(current: 0, ready: 0))
    try await backend.apply(
      ScaleAction(process: "batch", from: 0, to: 2, reason: .targetTracking, drainTimeout: 30), to: batch)
    #expect(try await backend.status(of: batch) == ReplicaStatus(current: 2, ready: 2))
  }

  @Test("an Event the API refuses does not hold up the scaling")
  func eventRefused() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    try await fixture.server.forbid(["system:serviceaccount:capstan:capstan": ["create events"]])
    let backend = backend(fixture)
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    _ = try await backend.status(of: web)
    try await backend.apply(
      ScaleAction(process: "web", from: 2, to: 3, reason: .targetTracking, drainTimeout: 30), to: web)
    #expect(try await fixture.server.replicas("Deployment", named: "web") == 3)
    // The Event is written off the action's path, so it may come after the scale.
    func posts() async -> [Int?] {
      ((try? await fixture.server.requests()) ?? []).filter { $0.method == "POST" }.map(\.status)
    }
    #expect(await eventually { await !posts().isEmpty })
    // A retry would come within its backoff; give it the time one would take, then count.
    try await Task.sleep(nanoseconds: 1_000_000_000)
    #expect(await posts() == [403], "one try, no retries")
  }

  @Test("a write with a stale resourceVersion is a conflict, and overwrites nothing")
  func conflict() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let backend = backend(fixture)
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    _ = try await backend.status(of: web)
    // A person scales by hand between Capstan's read and its write.
    let scaled = try await fixture.server.api(
      "PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", token: "admin-token",
      body: #"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web"},"spec":{"replicas":7}}"#
    )
    #expect(scaled.status == 200)
    await #expect {
      try await backend.apply(
        ScaleAction(process: "web", from: 2, to: 4, reason: .targetTracking, drainTimeout: 30), to: web)
    } throws: { error in
      let failure = error as? BackendError
      return failure?.conflict == true
        && failure?.message.contains("409 Conflict: Operation cannot be fulfilled") == true
    }
    #expect(try await fixture.server.replicas("Deployment", named: "web") == 7)
    // Read again, the next write goes through.
    #expect(try await backend.status(of: web).current == 7)
    try await backend.apply(
      ScaleAction(process: "web", from: 7, to: 4, reason: .targetTracking, drainTimeout: 30), to: web)
    #expect(try await fixture.server.replicas("Deployment", named: "web") == 4)
  }

  @Test(
    "404 and 403 carry the API's reason and message, and what to do; a refused write leaves a FailedRescale Event"
  )
  func statusErrors() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let backend = backend(fixture)
    let missing = try target("ghost", KubernetesWorkload(kind: .deployment, name: "ghost", namespace: "ml"))
    await #expect {
      try await backend.status(of: missing)
    } throws: { error in
      "\(error)"
        == #"ghost: deployment/ghost in ml: GET /apis/apps/v1/namespaces/ml/deployments/ghost/scale: 404 NotFound: deployments.apps "ghost" not found (check kubernetes.kind, name and namespace of the process)"#
    }
    try await fixture.server.forbid(["system:serviceaccount:capstan:capstan": ["update deployments/scale"]])
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    _ = try await backend.status(of: web)
    await #expect {
      try await backend.apply(
        ScaleAction(process: "web", from: 2, to: 3, reason: .targetTracking, drainTimeout: 30), to: web)
    } throws: { error in
      "\(error)".contains(
        #"403 Forbidden: deployments.apps "web" is forbidden: User "system:serviceaccount:capstan:capstan" cannot update resource "deployments/scale" in API group "apps" in the namespace "default" (give the service account this permission: see manifests/base/role.yaml)"#
      )
    }
    let events = try await fixture.server.objects().filter { $0["kind"] as? String == "Event" }
    #expect(events.count == 1)
    #expect(events.first?["reason"] as? String == "FailedRescale")
    #expect(events.first?["type"] as? String == "Warning")
    #expect((events.first?["message"] as? String)?.contains("error: Forbidden") == true)
  }

  @Test(
    "429: Retry-After is waited out before the next request; a long one fails fast and sends nothing more")
  func rateLimited() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    let backend = backend(fixture)
    try await fixture.server.setFaults([
      .init(method: "GET", path: "/scale$", status: 429, retryAfter: 1, count: 2)
    ])
    #expect(try await backend.status(of: web).current == 2)
    let scaleReads = try await fixture.server.requests().filter { $0.path.hasSuffix("/scale") }
    #expect(scaleReads.map(\.status) == [429, 429, 200])
    for (earlier, later) in zip(scaleReads, scaleReads.dropFirst()) {
      #expect(later.time - earlier.time >= 0.95, "sent before the server's Retry-After: 1 was over")
    }

    try await fixture.server.setFaults([.init(path: "/scale$", status: 429, retryAfter: 60, count: 100)])
    await #expect {
      try await backend.status(of: web)
    } throws: { error in
      "\(error)".contains("429 TooManyRequests: Too many requests, please try again later.")
    }
    let sent = try await fixture.server.requests().count
    await #expect {
      try await backend.status(of: web)
    } throws: { error in
      "\(error)".contains("not sent: the API server asked for a pause")
    }
    #expect(try await fixture.server.requests().count == sent, "a request went out during the server's pause")
  }

  @Test("500 with a Status is retried with backoff, then reported in the API's words")
  func serverErrors() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    let backend = backend(fixture)
    try await fixture.server.setFaults([.init(method: "GET", path: "/scale$", status: 500, count: 1)])
    #expect(try await backend.status(of: web).current == 2)
    try await fixture.server.setFaults([.init(method: "GET", path: "/scale$", status: 500, count: 3)])
    await #expect {
      try await backend.status(of: web)
    } throws: { error in
      "\(error)".contains(
        #"500 InternalError: an error on the server ("") has prevented the request from succeeding"#)
    }
    let failures = try await fixture.server.requests().filter { $0.status == 500 }
    #expect(failures.count == 4)
  }

  @Test("an answer slower than the timeout is a failure, not a hang, and is not retried")
  func slowAnswer() async throws {
    let fixture = try await APIFixture.start(timeout: 1)
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    try await fixture.server.setFaults([.init(method: "GET", path: "/scale$", delay: 3)])
    await #expect {
      try await backend(fixture).status(of: web)
    } throws: { error in
      "\(error)".contains("no answer in time")
    }
    #expect(try await fixture.server.requests().filter { $0.path.hasSuffix("/scale") }.count == 1)
  }

  @Test("no API server: the read fails in curl's words after its retries; an unreadable token file is named")
  func deadServerAndMissingToken() async throws {
    let port = try freePort()
    var connection = KubernetesConnection(server: "https://127.0.0.1:\(port)", origin: "test")
    connection.token = .literal("t")
    let api = WorkloadAPI(client: KubernetesClient(connection: connection, logger: Logger(label: "test")))
    let web = KubernetesWorkload(kind: .deployment, name: "web")
    let started = Date()
    await #expect {
      try await api.scale(of: web, namespace: "default")
    } throws: { error in
      "\(error)".contains("nothing answered")
    }
    // Three tries, 0.5 s and 1 s apart.
    #expect(Date().timeIntervalSince(started) >= 1.4)

    connection.token = .file("/nonexistent/capstan/token")
    let tokenless = WorkloadAPI(
      client: KubernetesClient(connection: connection, logger: Logger(label: "test")))
    await #expect {
      try await tokenless.scale(of: web, namespace: "default")
    } throws: { error in
      "\(error)".contains("cannot read the token file /nonexistent/capstan/token")
    }
  }

  @Test("a rotated token: 401 until the file is read again, which happens at once")
  func rotatedToken() async throws {
    let server = try KubernetesAPIServer()
    #expect(await server.ready())
    try await server.setTokens(["token-1": "capstan"])
    try await server.addWorkload(name: "web", replicas: 2)
    let tokenFile = server.folder.appendingPathComponent("token")
    try "token-1\n".write(to: tokenFile, atomically: true, encoding: .utf8)
    var connection = KubernetesConnection(server: server.url, origin: "test")
    connection.ca = .file(server.caFile)
    connection.token = .file(tokenFile.path)
    let client = KubernetesClient(connection: connection, logger: Logger(label: "test"))
    let api = WorkloadAPI(client: client)
    let web = KubernetesWorkload(kind: .deployment, name: "web")
    #expect(try await api.scale(of: web, namespace: "default").desired == 2)
    // The kubelet rotates the bound token: the old one is refused from now on.
    try await server.setTokens(["token-2": "capstan"])
    try "token-2\n".write(to: tokenFile, atomically: true, encoding: .utf8)
    #expect(try await api.scale(of: web, namespace: "default").desired == 2)
    let statuses = try await server.requests().map(\.status)
    #expect(statuses == [200, 401, 200])
    // A literal token that is refused is an error with what to do.
    connection.token = .literal("token-1")
    let stale = WorkloadAPI(client: KubernetesClient(connection: connection, logger: Logger(label: "test")))
    await #expect {
      try await stale.scale(of: web, namespace: "default")
    } throws: { error in
      "\(error)".contains("401 Unauthorized: Unauthorized (the token or certificate was refused")
    }
  }

  @Test("TLS is verified against the kubeconfig's CA; a client certificate signs in")
  func tlsAndClientCertificates() async throws {
    let server = try KubernetesAPIServer()
    #expect(await server.ready())
    try await server.addWorkload(name: "web", replicas: 2)
    let folder = server.folder
    let (certificate, key) = server.clientCertificate
    let config = folder.appendingPathComponent("kubeconfig")
    try server.kubeconfig(user: "client-certificate: \(certificate)\nclient-key: \(key)")
      .write(to: config, atomically: true, encoding: .utf8)
    let connection = try KubernetesConnection.fromKubeconfig(files: [config.path], context: nil)
    let api = WorkloadAPI(client: KubernetesClient(connection: connection, logger: Logger(label: "test")))
    let web = KubernetesWorkload(kind: .deployment, name: "web")
    #expect(try await api.scale(of: web, namespace: "default").desired == 2)
    #expect(try await server.requests().last?.user == "capstan-client")

    var untrusted = connection
    untrusted.ca = nil
    let refused = WorkloadAPI(client: KubernetesClient(connection: untrusted, logger: Logger(label: "test")))
    await #expect {
      try await refused.scale(of: web, namespace: "default")
    } throws: { error in
      "\(error)".contains("the server's TLS certificate was not trusted")
    }
  }

  @Test("drain_timeout longer than the pods' grace period is a warning")
  func drainWarning() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2, terminationGracePeriodSeconds: 20)
    let backend = backend(fixture)
    let long = try target("web", KubernetesWorkload(kind: .deployment, name: "web"), drainTimeout: 120)
    _ = try await backend.status(of: long)
    #expect(
      await backend.warnings(for: long) == [
        "drain_timeout is 120s but deployment/web's pods get 20s (terminationGracePeriodSeconds) before Kubernetes kills them: raise terminationGracePeriodSeconds in the pod template, or lower drain_timeout"
      ])
    let short = try target("web", KubernetesWorkload(kind: .deployment, name: "web"), drainTimeout: 20)
    #expect(await backend.warnings(for: short).isEmpty)
  }

  @Test("a process that is not the leader writes nothing")
  func followerWritesNothing() async throws {
    struct Follower: LeaderGate { func isLeading(at now: Date) -> Bool { false } }
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let backend = backend(fixture, leader: Follower())
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    _ = try await backend.status(of: web)
    await #expect(throws: BackendError.self) {
      try await backend.apply(
        ScaleAction(process: "web", from: 2, to: 3, reason: .targetTracking, drainTimeout: 30), to: web)
    }
    #expect(try await fixture.server.requests().filter { $0.method != "GET" }.isEmpty)
  }
}
