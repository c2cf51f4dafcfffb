import CapstanBackends
import CapstanCore
import CapstanKubernetes
import CapstanTestKit
import Foundation
import Logging
import Testing

/// The watch cache against the test API server's LIST and WATCH.
@Suite("Kubernetes: Deployments read through a watch")
struct WorkloadInformerTests {
  static func backend(_ fixture: APIFixture) -> KubernetesBackend {
    KubernetesBackend(
      api: fixture.api, namespace: "default", leader: nil, reporter: "test", logger: Logger(label: "test"),
      watch: true)
  }

  /// Waits for a read of `target` to fail; what it said, or nil if it never failed.
  static func refusal(of target: ScalingTarget, by backend: KubernetesBackend, timeout: TimeInterval = 10)
    async
    -> String?
  {
    var said: String?
    _ = await eventually(timeout: timeout) {
      do {
        _ = try await backend.status(of: target)
        return false
      } catch {
        said = "\(error)"
        return true
      }
    }
    return said
  }

  static func gets(_ fixture: APIFixture) async throws -> [KubernetesAPIServer.Request] {
    try await fixture.server.requests().filter { $0.method == "GET" }
  }

  @Test(
    "one LIST and one WATCH serve every tick: changes arrive by the watch, and a steady tick sends nothing")
  func steadyTicks() async throws {
    let fixture = try await APIFixture.start()
    for name in ["a", "b", "c"] { try await fixture.server.addWorkload(name: name, replicas: 2) }
    let backend = Self.backend(fixture)
    let targets = try ["a", "b", "c"].map { try target($0, KubernetesWorkload(kind: .deployment, name: $0)) }
    for _ in 0..<5 {
      for target in targets { #expect(try await backend.status(of: target).current == 2) }
    }
    // Someone scales b; the watch brings it.
    try await fixture.server.api(
      "PUT", "/apis/apps/v1/namespaces/default/deployments/b/scale", token: "admin-token",
      body: #"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"b"},"spec":{"replicas":7}}"#)
    #expect(await eventually { (try? await backend.status(of: targets[1]).current) == 7 })
    let reads = try await Self.gets(fixture).filter { $0.user != "admin" }
    #expect(reads.filter { $0.watch != true }.count == 1, "\(reads.map(\.path))")
    #expect(reads.filter { $0.watch == true }.count == 1)
    #expect(reads.allSatisfy { !$0.path.hasSuffix("/scale") })

    // A write of Capstan's own is in the cache at once, with the resourceVersion it made.
    let up = ScaleAction(process: "a", from: 2, to: 5, reason: .targetTracking, drainTimeout: 30)
    try await backend.apply(up, to: targets[0])
    #expect(try await backend.status(of: targets[0]).current == 5)
    let down = ScaleAction(process: "a", from: 5, to: 3, reason: .targetTracking, drainTimeout: 30)
    try await backend.apply(down, to: targets[0])
    #expect(try await fixture.server.replicas("Deployment", named: "a") == 3)
    await backend.shutdown()
  }

  @Test("a dropped watch is not decided from until it is open again; a forgotten history is listed again")
  func brokenWatch() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 4)
    let backend = Self.backend(fixture)
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    #expect(try await backend.status(of: web).current == 4)

    // The API server goes away: every watch is cut and new ones fail for a while.
    try await fixture.server.setFaults([.init(path: "/deployments$", status: 503, count: 3)])
    try await fixture.server.dropWatches()
    let refusal = await Self.refusal(of: web, by: backend)
    #expect(
      refusal?.contains("not deciding from a cache that may be stale") == true, "\(refusal ?? "no refusal")")
    // Back: the watch opens again from where it was, and the change made meanwhile is seen.
    try await fixture.server.api(
      "PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", token: "admin-token",
      body: #"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web"},"spec":{"replicas":6}}"#
    )
    #expect(await eventually(timeout: 20) { (try? await backend.status(of: web).current) == 6 })

    // etcd compacts: a watch from the old resourceVersion gets 410 Expired and LISTs again.
    let listsBefore = try await Self.gets(fixture).filter {
      $0.watch != true && $0.path.hasSuffix("/deployments")
    }
    try await fixture.server.forgetHistory()
    try await fixture.server.dropWatches()
    try await fixture.server.addWorkload(name: "api", replicas: 3)
    let api = try target("api", KubernetesWorkload(kind: .deployment, name: "api"))
    #expect(await eventually(timeout: 20) { (try? await backend.status(of: api).current) == 3 })
    let listsAfter = try await Self.gets(fixture).filter {
      $0.watch != true && $0.path.hasSuffix("/deployments")
    }
    #expect(listsAfter.count > listsBefore.count)

    // Deleted: the cache says so.
    try await fixture.server.deleteWorkload(name: "api")
    let gone = await Self.refusal(of: api, by: backend)
    #expect(gone?.contains("not found") == true, "\(gone ?? "still read")")
    await backend.shutdown()
  }

  @Test("a stale write is re-read directly, not from the cache that made it stale")
  func conflictReadsDirectly() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let backend = Self.backend(fixture)
    let web = try target("web", KubernetesWorkload(kind: .deployment, name: "web"))
    #expect(try await backend.status(of: web).current == 2)
    try await fixture.server.setFaults([.init(method: "PUT", path: "/scale$", raceReplicas: 9, count: 1)])
    await #expect(throws: BackendError.self) {
      try await backend.apply(
        ScaleAction(process: "web", from: 2, to: 4, reason: .targetTracking, drainTimeout: 30), to: web)
    }
    let directBefore = try await fixture.server.requests().filter {
      $0.path.hasSuffix("/web/scale") && $0.method == "GET"
    }
    #expect(try await backend.status(of: web).current == 9)
    let directAfter = try await fixture.server.requests().filter {
      $0.path.hasSuffix("/web/scale") && $0.method == "GET"
    }
    #expect(directAfter.count == directBefore.count + 1)
    await backend.shutdown()
  }
}
