import CapstanCore
import CapstanKubernetes
import Foundation
import Logging
import Prometheus
import Testing

@Suite("Capstan's own rate limit on the API server")
struct RateLimitTests {
  @Test(
    "a token bucket: the burst goes at once, then one request every 1/qps seconds, refilled by quiet time")
  func tokenBucket() {
    let start = Date(timeIntervalSince1970: 1_000_000)
    var limiter = RequestRateLimiter(qps: 20, burst: 30)
    // 30 at once go now; the 31st waits a twentieth of a second, the 32nd two.
    let waits = (0..<32).map { _ in limiter.reserve(at: start) }
    #expect(waits.prefix(30).allSatisfy { $0 == 0 })
    #expect(abs(waits[30] - 0.05) < 1e-9)
    #expect(abs(waits[31] - 0.10) < 1e-9)
    // A second of quiet earns 20 slots back, of which 2 pay the debt: 18 go at once.
    let later = start.addingTimeInterval(1)
    let next = (0..<19).map { _ in limiter.reserve(at: later) }
    #expect(next.prefix(18).allSatisfy { $0 == 0 })
    #expect(abs(next[18] - 0.05) < 1e-9)
    // Quiet never fills the bucket past the burst.
    let muchLater = later.addingTimeInterval(3600)
    #expect((0..<30).map { _ in limiter.reserve(at: muchLater) }.allSatisfy { $0 == 0 })
    #expect(limiter.reserve(at: muchLater) > 0)
  }

  @Test("qps and burst are read from the policy, with client-go's defaults, and refused out of range")
  func settings() throws {
    func load(_ kubernetes: String) -> Result<LoadedPolicy, PolicyLoadError> {
      do {
        return .success(
          try PolicyLoader.load(
            yaml: """
              kubernetes: \(kubernetes)
              processes:
                api: {scaling: {metric: q, target: 10, min: 1, max: 4}}
              """, file: "p.yaml"))
      } catch {
        return .failure(error)
      }
    }
    guard case .success(let defaults) = load("{}"), case .kubernetes(let plain) = defaults.policy.backend
    else {
      Issue.record("the plain policy did not load")
      return
    }
    #expect(plain.qps == 20 && plain.burst == 30)
    guard case .success(let set) = load("{qps: 50, burst: 100}"),
      case .kubernetes(let chosen) = set.policy.backend
    else {
      Issue.record("the policy with qps and burst did not load")
      return
    }
    #expect(chosen.qps == 50 && chosen.burst == 100)
    guard case .failure(let refused) = load("{qps: 0, burst: 0}") else {
      Issue.record("qps 0 and burst 0 were accepted")
      return
    }
    let messages = refused.diagnostics.map(\.description)
    #expect(messages.contains { $0.contains("p.yaml:1:19") && $0.contains("above zero") }, "\(messages)")
    #expect(messages.contains { $0.contains("p.yaml:1:29") && $0.contains("burst is 0") }, "\(messages)")
  }

  @Test(
    "requests past the burst wait their turn: the wait is counted and warned of, and every request is answered"
  )
  func clientWaits() async throws {
    let fixture = try await APIFixture.start()
    try await fixture.server.addWorkload(name: "web", replicas: 2)
    let registry = PrometheusCollectorRegistry()
    var connection = await fixture.client.connection
    connection.token = .literal("capstan-token")
    let client = KubernetesClient(
      connection: connection, logger: Logger(label: "test"),
      rateLimit: RequestRateLimiter(qps: 4, burst: 1), metrics: PrometheusMetricsFactory(registry: registry),
      now: { Date(timeIntervalSince1970: 1_000_000) })
    let api = WorkloadAPI(client: client)
    let workload = KubernetesWorkload(kind: .deployment, name: "web")
    for _ in 0..<5 {
      #expect(try await api.scale(of: workload, namespace: "default").desired == 2)
    }
    var exposition: [UInt8] = []
    registry.emit(into: &exposition)
    let line = String(decoding: exposition, as: UTF8.self).split(separator: "\n").first {
      $0.hasPrefix("capstan_kubernetes_rate_limit_wait_seconds_total ")
    }
    // Five requests at 4 a second from a bucket of one, on a clock that stands still: the last
    // four are promised slots a quarter, a half, three quarters and a whole second on.
    let waited = line.flatMap { Double($0.split(separator: " ").last ?? "") }
    #expect(waited == 2.5, "\(line ?? "no series")")
    #expect(try await fixture.server.requests().filter { $0.path.hasSuffix("/web/scale") }.count == 5)
  }
}
