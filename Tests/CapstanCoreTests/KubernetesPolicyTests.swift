import Foundation
import Testing

@testable import CapstanCore

@Suite("Kubernetes policy")
struct KubernetesPolicyTests {
  @Test("workloads: Deployment by default, StatefulSet, a custom resource; settings and leader election")
  func workloads() throws {
    let policy = try loadPolicy(
      """
      backend: kubernetes
      kubernetes:
        kubeconfig: ~/.kube/config
        context: prod
        namespace: ai
        leader_election: {lease: capstan-ai, retry_period: 1s}
      processes:
        api:
          scaling: {metric: cpu, target: 70%, min: 1, max: 4}
        vllm:
          kubernetes: {kind: StatefulSet, name: vllm-llama, namespace: gpu}
          scaling: {metric: gpu, target: 70%, min: 1, max: 4}
        ray:
          kubernetes: {kind: ray.io/v1/rayclusters, name: batch}
          scaling: {metric: queue, target: 10, min: 1, max: 4}
      """)
    guard case .kubernetes(let settings) = policy.backend else {
      Issue.record("backend is \(policy.backend)")
      return
    }
    #expect(settings.kubeconfig == "~/.kube/config")
    #expect(settings.context == "prod")
    #expect(settings.namespace == "ai")
    let election = try #require(settings.leaderElection)
    #expect(election.lease == "capstan-ai")
    #expect(election.leaseDuration == 15)
    #expect(election.renewDeadline == 10)
    #expect(election.retryPeriod == 1)
    #expect(policy.target(named: "api")?.kubernetes == KubernetesWorkload(kind: .deployment, name: "api"))
    #expect(
      policy.target(named: "vllm")?.kubernetes
        == KubernetesWorkload(kind: .statefulSet, name: "vllm-llama", namespace: "gpu"))
    #expect(
      policy.target(named: "ray")?.kubernetes
        == KubernetesWorkload(
          kind: .custom(group: "ray.io", version: "v1", plural: "rayclusters"), name: "batch"))
  }

  @Test("a top-level kubernetes: section alone chooses the backend; without leader_election there is none")
  func impliedBackend() throws {
    let policy = try loadPolicy(
      """
      kubernetes: {context: kind-dev}
      processes:
        api: {scaling: {metric: cpu, target: 70%, min: 1, max: 4}}
      """)
    #expect(policy.backend == .kubernetes(KubernetesSettings(context: "kind-dev")))
  }

  @Test("kubernetes: under another backend is a warning, and workloads are not resolved")
  func ignoredSection() throws {
    let loaded = try PolicyLoader.load(
      yaml: """
        backend: local
        kubernetes: {context: prod}
        processes:
          api: {scaling: {metric: cpu, target: 70%, min: 1, max: 4}, local: {command: [sleep, "60"]}}
        """, file: "p.yaml")
    #expect(loaded.policy.backend == .local)
    #expect(
      loaded.warnings.map(\.description) == [
        "p.yaml:2:23: warning: 'kubernetes:' has no effect: the backend is not kubernetes"
      ])
    #expect(loaded.policy.target(named: "api")?.kubernetes == nil)
  }
}
