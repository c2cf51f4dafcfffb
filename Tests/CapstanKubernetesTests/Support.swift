import CapstanCore
import CapstanKubernetes
import CapstanTestKit
import Foundation
import Logging

/// A test API server with a token for Capstan, and a client that uses it.
struct APIFixture {
  let server: KubernetesAPIServer
  let client: KubernetesClient

  static func start(token: String = "capstan-token", timeout: TimeInterval = 5) async throws -> APIFixture {
    let server = try KubernetesAPIServer()
    guard await server.ready() else {
      throw KubernetesAPIServer.Failure(description: "the test API server did not start")
    }
    try await server.setTokens([token: "system:serviceaccount:capstan:capstan", "admin-token": "admin"])
    var connection = KubernetesConnection(server: server.url, origin: "test")
    connection.ca = .file(server.caFile)
    connection.token = .literal(token)
    return APIFixture(
      server: server,
      client: KubernetesClient(connection: connection, timeout: timeout, logger: Logger(label: "test")))
  }

  var api: WorkloadAPI { WorkloadAPI(client: client) }
}

func target(_ name: String, _ workload: KubernetesWorkload, drainTimeout: TimeInterval = 30) throws
  -> ScalingTarget
{
  let loaded = try PolicyLoader.load(
    yaml: """
      backend: kubernetes
      processes:
        \(name):
          scaling: {metric: q, target: 10, min: 1, max: 20}
      autoscaling:
        \(name): {scale_down: {action: {drain_timeout: \(Int(drainTimeout))s}}}
      """, file: "test.yaml")
  var target = loaded.policy.targets[0]
  target.kubernetes = workload
  return target
}
