import CapstanBackends
import CapstanController
import CapstanCore
import CapstanKubernetes
import CapstanRuntime
import CapstanTestKit
import Foundation
import Logging
import MetricsTestKit
import Testing

/// The live controller with the Kubernetes backend against the test API server, and fake signals.
@Suite("Controller on Kubernetes", .serialized)
struct KubernetesControllerTests {
  static let policy = """
    backend: kubernetes
    processes:
      web:
        scaling: {metric: queue, target: 10, min: 1, max: 10}
    autoscaling:
      web: {scale_down: {stabilization_window: 0s}}
    """

  /// The harness and the queue signal it reads.
  static func harness(_ fixture: APIFixture) throws -> (ControllerHarness<KubernetesBackend>, FakeSignal) {
    let queue = FakeSignal("queue", .value(40))
    let backend = KubernetesBackend(
      api: fixture.api, namespace: "default", leader: nil, reporter: "test", logger: Logger(label: "test"))
    return (
      try ControllerHarness(yaml: policy, signals: [queue], backend: backend, label: "k8s-controller"), queue
    )
  }

  @Test("a conflict is re-read and re-decided in the same tick, from the count someone else set")
  func conflictRedecided() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let (harness, queue) = try Self.harness(fixture)
    queue.set(.value(20))
    await harness.tick(0)
    #expect(harness.records().isEmpty)
    // Someone scales web to 7 between Capstan's read and its write.
    queue.set(.value(40))
    try await fixture.server.setFaults([.init(method: "PUT", path: "/scale$", raceReplicas: 7)])
    await harness.tick(15)
    // queue 40 / target 10: 4 replicas, decided again from 7 after the conflict.
    #expect(try await fixture.server.replicas("Deployment", named: "web") == 4)
    let events = harness.records().map { "\($0["event"]!) \($0["from"] ?? "-")->\($0["to"] ?? "-")" }
    #expect(events == ["scale_up 2->4", "blocked 2->4", "external_change 2->7", "scale_down 7->4"])
    let blocked = harness.records()[1]
    #expect((blocked["detail"] as? String)?.contains("409 Conflict") == true)
    #expect((blocked["detail"] as? String)?.hasSuffix("reading it again and deciding again") == true)
    let writes = try await fixture.server.requests().filter { $0.method == "PUT" }.map(\.status)
    #expect(writes == [409, 200])
  }

  @Test("someone else's change between ticks is reported as external_change and decided from")
  func externalChange() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 4)
    let (harness, _) = try Self.harness(fixture)
    await harness.tick(0)
    #expect(harness.records().isEmpty)
    try await fixture.server.api(
      "PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", token: "admin-token",
      body: #"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web"},"spec":{"replicas":9}}"#
    )
    await harness.tick(15)
    let records = harness.records()
    #expect(records.first?["event"] as? String == "external_change")
    #expect(records.first?["from"] as? Int == 4)
    #expect(records.first?["to"] as? Int == 9)
    #expect(records.count == 2)
    #expect(records.last?["event"] as? String == "scale_down")
    #expect(try await fixture.server.replicas("Deployment", named: "web") == 4)
  }

  @Test("an API server that cannot be read decides nothing and scales nothing down")
  func unreadable() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 6)
    let (harness, _) = try Self.harness(fixture)
    try await fixture.server.setFaults([.init(method: "GET", path: "/scale$", status: 503, count: 100)])
    await harness.tick(0)
    #expect(harness.records().isEmpty)
    #expect(try await fixture.server.requests().filter { $0.method != "GET" }.isEmpty)
    #expect(try await fixture.server.replicas("Deployment", named: "web") == 6)
  }
}
