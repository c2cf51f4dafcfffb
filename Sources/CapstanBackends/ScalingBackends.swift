import CapstanCore
import CapstanKubernetes
import CapstanRuntime
import Foundation
import Logging
import Metrics

/// The backends, registered in one place as the signal sources are (`SignalReaders.make`):
/// builds the backend a policy names, for `run` to act through and `record` to read replica
/// counts from. docs/new-backend.md lists what a new backend adds here.
public enum ScalingBackends {
  public struct Built {
    public var backend: any ScalingBackend
    /// With Kubernetes leader election: the elector, for `run` to serve and gate on.
    public var elector: LeaderElector?
    /// With Kubernetes: the ConfigMap that keeps the state across pods.
    public var sharedState: ConfigMapStateStore?
  }

  /// The backend `capstan run` acts through.
  /// - Parameter guardExecutable: the binary whose `replica-guard` subcommand the local
  ///   supervisor starts each replica under (the running `capstan`).
  public static func forRun(
    _ policy: Policy, baseDirectory: URL, stateDirectory: URL, guardExecutable: URL, logger: Logger,
    metrics: (any MetricsFactory)? = nil
  ) throws -> Built {
    switch policy.backend {
    case .local:
      return Built(
        backend: LocalProcessBackend(
          configuration: .init(
            guardExecutable: guardExecutable, baseDirectory: baseDirectory,
            logDirectory: stateDirectory.appendingPathComponent("logs"),
            runDirectory: stateDirectory.appendingPathComponent("replicas"),
            sharesDirectory: stateDirectory.appendingPathComponent("shares")),
          logger: Logger(label: "capstan.local")))
    case .command(let settings):
      return Built(
        backend: CommandBackend(
          settings: settings, workingDirectory: baseDirectory,
          store: try StateStore(directory: stateDirectory, name: "command-backend.json"),
          logger: Logger(label: "capstan.command")))
    case .kubernetes(let settings):
      let (connection, namespace) = try kubernetesConnection(settings, baseDirectory: baseDirectory)
      let identity = LeaderElector.makeIdentity(environment: ProcessInfo.processInfo.environment)
      // A client of its own, so a pause the API server asks of the scaling calls (a 429) does
      // not stop the lease from being renewed, as its own priority level would not in a cluster.
      let elector = settings.leaderElection.map {
        LeaderElector(
          client: KubernetesClient(connection: connection, logger: Logger(label: "capstan.leader")),
          settings: $0, namespace: namespace, identity: identity,
          logger: Logger(label: "capstan.leader"))
      }
      logger.notice(
        "kubernetes",
        metadata: [
          "server": "\(connection.server)", "from": "\(connection.origin)", "namespace": "\(namespace)",
          "leader_election":
            "\(elector.map { "lease \($0.namespace)/\($0.settings.lease) as \($0.identity)" } ?? "off")",
        ])
      // Beside the Lease when there is one: `<lease>-state`; else `capstan-state`.
      let stateStore = ConfigMapStateStore(
        client: KubernetesClient(connection: connection, logger: Logger(label: "capstan.state")),
        namespace: settings.leaderElection?.namespace ?? namespace,
        name: "\(settings.leaderElection?.lease ?? "capstan")-state")
      // The scaling calls keep to the policy's rate limit; the Lease and the state ConfigMap
      // are a call or two a tick, on clients of their own.
      let scalingClient = KubernetesClient(
        connection: connection, logger: Logger(label: "capstan.kubernetes"),
        rateLimit: RequestRateLimiter(qps: settings.qps, burst: settings.burst), metrics: metrics)
      return Built(
        backend: KubernetesBackend(
          api: WorkloadAPI(client: scalingClient),
          namespace: namespace, leader: elector, reporter: identity,
          logger: Logger(label: "capstan.kubernetes"), watch: true),
        elector: elector, sharedState: stateStore)
    }
  }

  /// A backend that can tell, from outside, how many replicas run and how many are ready, for
  /// `capstan record`; nil where only the running controller knows (the local supervisor, a
  /// command backend without `status_argv`).
  public static func forObserving(_ policy: Policy, baseDirectory: URL) throws -> (any ScalingBackend)? {
    switch policy.backend {
    case .local:
      return nil
    case .command(let settings):
      guard settings.statusArgv != nil else { return nil }
      return CommandBackend(
        settings: settings, workingDirectory: baseDirectory,
        logger: Logger(label: "capstan.command"))
    case .kubernetes(let settings):
      let (connection, namespace) = try kubernetesConnection(settings, baseDirectory: baseDirectory)
      return KubernetesBackend(
        api: WorkloadAPI(
          client: KubernetesClient(connection: connection, logger: Logger(label: "capstan.kubernetes"))),
        namespace: namespace, leader: nil, reporter: "capstan-record",
        logger: Logger(label: "capstan.kubernetes"))
    }
  }

  private static func kubernetesConnection(_ settings: KubernetesSettings, baseDirectory: URL) throws -> (
    KubernetesConnection, String
  ) {
    let connection = try KubernetesConnection.resolve(
      settings, baseDirectory: baseDirectory, environment: ProcessInfo.processInfo.environment)
    return (connection, settings.namespace ?? connection.namespace ?? "default")
  }
}

extension LeaderElector: LeaderGate {}
