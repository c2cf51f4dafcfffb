import Foundation
import Testing

@testable import CapstanCore

@Suite("Each worker's share of a provider's limits")
struct WorkerShareTests {
  static func policy() throws -> Policy {
    try loadPolicy(
      """
      providers:
        llm: {requests_per_minute: 1000, tokens_per_minute: 100000, max_concurrent_requests: 40, safety_margin: 0.8}
      processes:
        agents:
          scaling: {metric: q, target: 1, min: 0, max: 10}
          class: batch
          rate_limit: {provider: llm, requests_per_minute_per_replica: 100, tokens_per_minute_per_replica: 1000, request_seconds: 3s}
        summarizer:
          scaling: {metric: q, target: 1, min: 1, max: 10}
          rate_limit: {provider: llm, requests_per_minute_per_replica: 20, tokens_per_minute_per_replica: 9000}
        local:
          scaling: {metric: q, target: 1, min: 1, max: 10}
      """)
  }

  @Test(
    "limits × margin divided by what the processes declare, then among their replicas; never more than the limit"
  )
  func dividedByDeclaredUse() throws {
    let shares = WorkerShares.compute(
      policy: try Self.policy(), replicas: ["agents": 4, "summarizer": 2, "local": 3])
    let agents = try #require(shares["agents"])
    let summarizer = try #require(shares["summarizer"])
    #expect(shares["local"] == nil)
    // Requests: 800 split 400 : 40 (4 × 100 against 2 × 20), so 727.27 and 72.72 in all.
    #expect(agents.requestsPerMinute == 181.818 && summarizer.requestsPerMinute == 36.363)
    // Tokens: 80,000 split 4,000 : 18,000.
    #expect(agents.tokensPerMinute == 3636.363 && summarizer.tokensPerMinute == 32727.272)
    // Concurrency: no process declares it, so 32 is split per replica (5.33 each); the agents'
    // 181.8 a minute × 3 s / 60 = 9.09 is higher, so 5.
    #expect(agents.concurrentRequests == 5 && summarizer.concurrentRequests == 5)
    #expect(agents.replicas == 4)
    let requests = 4 * (agents.requestsPerMinute ?? 0) + 2 * (summarizer.requestsPerMinute ?? 0)
    let tokens = 4 * (agents.tokensPerMinute ?? 0) + 2 * (summarizer.tokensPerMinute ?? 0)
    #expect(requests <= 800 && tokens <= 80_000)
  }

  @Test("a process at zero gets what its first replica would; the others keep theirs")
  func processAtZero() throws {
    let shares = WorkerShares.compute(policy: try Self.policy(), replicas: ["agents": 0, "summarizer": 2])
    #expect(shares["agents"]?.replicas == 1 && shares["agents"]?.requestsPerMinute == 571.428)
    #expect(shares["summarizer"]?.requestsPerMinute == 400)
  }

  @Test(
    "after a tick, a process counts at the larger of its counts before and after, plus its draining replicas")
  func countsWhatMaySend() throws {
    let policy = try Self.policy()
    let grow = ScaleAction(process: "agents", from: 2, to: 4, reason: .targetTracking, drainTimeout: 30)
    let shrink = ScaleAction(process: "summarizer", from: 3, to: 1, reason: .targetTracking, drainTimeout: 30)
    let shares = WorkerShares.compute(
      policy: policy,
      replicas: ["agents": ReplicaStatus(2), "summarizer": ReplicaStatus(current: 3, ready: 3, draining: 1)],
      actions: [grow, shrink])
    // agents 4 (after the scale-up), summarizer 3 + 1 draining = 4.
    #expect(shares["agents"]?.replicas == 4 && shares["summarizer"]?.replicas == 4)
    #expect(
      shares == WorkerShares.compute(policy: policy, replicas: ["agents": 4, "summarizer": 4]))
  }

  @Test(
    "concurrency rounds down, so the replicas together never hold more than the limit × margin; a process with no replica count this tick gets no share"
  )
  func roundsDown() throws {
    let policy = try PolicyLoader.load(
      yaml:
        """
        providers:
          tiny: {requests_per_minute: 10, max_concurrent_requests: 1}
        processes:
          w:
            class: batch
            scaling: {metric: q, target: 1, min: 0, max: 50}
            rate_limit: {provider: tiny, requests_per_minute_per_replica: 1, request_seconds: 1s}
        """, file: "p.yaml"
    ).policy
    let share = try #require(WorkerShares.compute(policy: policy, replicas: ["w": 8])["w"])
    // 1 × 0.8 in flight among 8 replicas: 0 each, where a minimum of 1 would put 8 in flight.
    #expect(share.concurrentRequests == 0 && share.requestsPerMinute == 1)
    #expect(WorkerShares.compute(policy: policy, replicas: [:]).isEmpty)
  }

  static let concurrencyPolicy = """
    providers:
      llm: {requests_per_minute: 6000, max_concurrent_requests: 10}
    processes:
      agents:
        class: batch
        scaling: {metric: jobs, target: 1, min: 0, max: 12}
        rate_limit: {provider: llm, requests_per_minute_per_replica: 60, request_seconds: 2s}
    """

  @Test(
    "each running replica holds at least one request in flight: 12 wanted under 10 × 0.8 stop at 8, each told 1"
  )
  func concurrencyCeiling() throws {
    let policy = try loadPolicy(Self.concurrencyPolicy)
    var harness = EngineHarness(policy, replicas: ["agents": 0])
    for second in stride(from: 0.0, through: 600, by: 15) { harness.tick(at: second, ["jobs": 12]) }
    #expect(harness.replicas["agents"] == 8)
    #expect(harness.events(.blocked).contains { $0.reason == .rateLimitCeiling })
    let share = try #require(WorkerShares.compute(policy: policy, replicas: ["agents": 8])["agents"])
    #expect(share.concurrentRequests == 1)
    #expect(Double(share.concurrentRequests ?? 0) * 8 <= 10 * 0.8)
  }

  @Test(
    "validate warns where the processes on a provider may run more replicas than it has requests in flight")
  func concurrencyWarning() throws {
    let loaded = try PolicyLoader.load(yaml: Self.concurrencyPolicy, file: "p.yaml")
    let warning = try #require(loaded.warnings.first)
    #expect(warning.location.line == 2)
    #expect(
      warning.message.contains(
        "max_concurrent_requests 10 × safety margin 0.8 is 8 requests in flight, fewer than the 12 replicas agents may run"
      ))
  }
}
