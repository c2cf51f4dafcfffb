import CapstanCore
import Foundation
import Logging

/// Drives `LeaseElection` against the API server: one `step` reads the Lease and creates, renews
/// or waits. Whether this process leads is a question of time (`isLeading(at:)`), so a leader
/// whose renewals stall stops acting at its renew deadline even if no step runs.
public final class LeaderElector: @unchecked Sendable {
  public let identity: String
  public let settings: LeaderElectionSettings
  public let namespace: String
  private let client: KubernetesClient
  private let logger: Logger
  private let lock = NSLock()
  private var election: LeaseElection
  private var resourceVersion: String?

  public init(
    client: KubernetesClient, settings: LeaderElectionSettings, namespace: String, identity: String,
    logger: Logger
  ) {
    self.client = client
    self.settings = settings
    self.namespace = settings.namespace ?? namespace
    self.identity = identity
    self.logger = logger
    self.election = LeaseElection(identity: identity, settings: settings)
  }

  /// The pod's name (or the host's) and a random suffix, as client-go's examples make it: a
  /// restarted process is a new candidate, never mistaken for the old leader.
  public static func makeIdentity(environment: [String: String]) -> String {
    let host = environment["POD_NAME"] ?? ProcessInfo.processInfo.hostName
    return "\(host)_\(UUID().uuidString.prefix(8).lowercased())"
  }

  public func isLeading(at now: Date) -> Bool { lock.withLock { election.isLeading(at: now) } }
  public var holder: String? { lock.withLock { election.holder } }
  /// When this elector's last successful write of the Lease was sent.
  public var renewedAt: Date? { lock.withLock { election.renewedAt } }

  var path: String { "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases" }

  struct Lease: Codable {
    var apiVersion = "coordination.k8s.io/v1"
    var kind = "Lease"
    var metadata: ObjectMetadata
    var spec: LeaseRecord?
  }

  /// One try at acquiring or renewing. Failures are logged; they count against the deadline.
  public func step(now: Date = Date()) async {
    // A call may not outlast the time a leader has left to renew.
    let timeout = max(0.5, min(settings.renewDeadline / 2, settings.retryPeriod * 2, 5))
    do {
      var current: LeaseRecord?
      do {
        let data = try await client.send(
          "GET", "\(path)/\(settings.lease)", attempts: 1, patience: 0, timeout: timeout)
        let lease = try JSONDecoder().decode(Lease.self, from: data)
        current =
          lease.spec
          ?? LeaseRecord(
            holderIdentity: nil, leaseDurationSeconds: nil, acquireTime: nil, renewTime: nil,
            leaseTransitions: nil)
        lock.withLock { resourceVersion = lease.metadata.resourceVersion }
      } catch let error as KubernetesAPIError where error.isNotFound {
        current = nil
      }
      let plan = lock.withLock { election.plan(current: current, now: now) }
      let sent = Date()
      switch plan {
      case .wait: return
      case .create(let record):
        let lease = Lease(metadata: .init(name: settings.lease, namespace: namespace), spec: record)
        _ = try await client.send(
          "POST", path, body: try JSONEncoder().encode(lease), attempts: 1, patience: 0, timeout: timeout)
        lock.withLock { election.wrote(record, sentAt: sent, now: Date()) }
      case .update(let record):
        let version = lock.withLock { resourceVersion }
        let lease = Lease(
          metadata: .init(name: settings.lease, namespace: namespace, resourceVersion: version), spec: record)
        let data = try await client.send(
          "PUT", "\(path)/\(settings.lease)", body: try JSONEncoder().encode(lease), attempts: 1, patience: 0,
          timeout: timeout)
        let written = try? JSONDecoder().decode(Lease.self, from: data)
        lock.withLock {
          resourceVersion = written?.metadata.resourceVersion ?? version
          election.wrote(record, sentAt: sent, now: Date())
        }
      }
    } catch let error as KubernetesAPIError where error.isConflict {
      // Another candidate wrote first; the next step reads who.
      logger.debug("lease changed while writing it", metadata: ["lease": "\(settings.lease)"])
    } catch {
      logger.warning(
        "cannot read or renew the leader lease",
        metadata: ["lease": "\(namespace)/\(settings.lease)", "error": "\(error)"])
    }
  }

  /// Gives the lease up if this process leads, so another takes over at once.
  public func release() async {
    let now = Date()
    guard let record = lock.withLock({ election.release(now: now) }) else { return }
    let version = lock.withLock { resourceVersion }
    let lease = Lease(
      metadata: .init(name: settings.lease, namespace: namespace, resourceVersion: version), spec: record)
    do {
      _ = try await client.send(
        "PUT", "\(path)/\(settings.lease)", body: try JSONEncoder().encode(lease), attempts: 1, patience: 0,
        timeout: 2)
      logger.notice("released the leader lease", metadata: ["lease": "\(namespace)/\(settings.lease)"])
    } catch {
      logger.warning(
        "could not release the leader lease; it expires by itself", metadata: ["error": "\(error)"])
    }
  }
}
