import CapstanCore
import Foundation
import Logging

/// The part of a `coordination.k8s.io/v1` Lease that leader election reads and writes.
public struct LeaseRecord: Sendable, Equatable, Codable {
  public var holderIdentity: String?
  public var leaseDurationSeconds: Int?
  /// MicroTime strings, kept as written: they are compared, never computed with.
  public var acquireTime: String?
  public var renewTime: String?
  public var leaseTransitions: Int?

  public init(
    holderIdentity: String?, leaseDurationSeconds: Int?, acquireTime: String?, renewTime: String?,
    leaseTransitions: Int?
  ) {
    self.holderIdentity = holderIdentity
    self.leaseDurationSeconds = leaseDurationSeconds
    self.acquireTime = acquireTime
    self.renewTime = renewTime
    self.leaseTransitions = leaseTransitions
  }
}

/// client-go's leader election as a pure state machine: the driver reads the Lease, asks for a
/// plan, writes it, and reports success. Expiry is judged by the local clock from the moment this
/// process last saw the record change, never from the times written in it, so clocks on other
/// machines do not matter.
public struct LeaseElection: Sendable {
  public enum Plan: Sendable, Equatable {
    case create(LeaseRecord)
    /// Take over an expired or empty lease, or renew our own.
    case update(LeaseRecord)
    /// Someone else holds it and has renewed within its duration.
    case wait(holder: String)
  }

  public let identity: String
  public let leaseDuration: TimeInterval
  public let renewDeadline: TimeInterval
  public private(set) var observed: LeaseRecord?
  public private(set) var observedAt: Date?
  /// When the last successful write of ours was *sent*: the write happened after it, so a leader
  /// that counts its deadline from here stops before any follower can count the lease expired.
  public private(set) var renewedAt: Date?

  public init(identity: String, settings: LeaderElectionSettings) {
    self.identity = identity
    self.leaseDuration = settings.leaseDuration
    self.renewDeadline = settings.renewDeadline
  }

  public func isLeading(at now: Date) -> Bool {
    guard observed?.holderIdentity == identity, let renewedAt else { return false }
    return now.timeIntervalSince(renewedAt) < renewDeadline
  }

  /// Who holds the lease, as last seen.
  public var holder: String? { observed?.holderIdentity.flatMap { $0.isEmpty ? nil : $0 } }

  public mutating func plan(current: LeaseRecord?, now: Date) -> Plan {
    let stamp = MicroTime.string(now)
    guard let current else {
      return .create(
        LeaseRecord(
          holderIdentity: identity, leaseDurationSeconds: Int(leaseDuration.rounded(.up)), acquireTime: stamp,
          renewTime: stamp, leaseTransitions: 0))
    }
    if current != observed {
      observed = current
      observedAt = now
    }
    let holder = current.holderIdentity ?? ""
    let duration = TimeInterval(current.leaseDurationSeconds ?? Int(leaseDuration))
    if !holder.isEmpty && holder != identity, let observedAt, now.timeIntervalSince(observedAt) < duration {
      return .wait(holder: holder)
    }
    let ours = holder == identity
    return .update(
      LeaseRecord(
        holderIdentity: identity, leaseDurationSeconds: Int(leaseDuration.rounded(.up)),
        acquireTime: ours ? current.acquireTime : stamp, renewTime: stamp,
        leaseTransitions: (current.leaseTransitions ?? 0) + (ours ? 0 : 1)))
  }

  /// The write of `record`, sent at `sentAt`, succeeded.
  public mutating func wrote(_ record: LeaseRecord, sentAt: Date, now: Date) {
    observed = record
    observedAt = now
    if record.holderIdentity == identity { renewedAt = sentAt }
  }

  /// Giving the lease up on a clean stop, as client-go's ReleaseOnCancel does, so a follower
  /// takes over at once rather than after the lease duration. Nil unless leading.
  public mutating func release(now: Date) -> LeaseRecord? {
    guard isLeading(at: now), var record = observed else { return nil }
    record.holderIdentity = ""
    record.leaseDurationSeconds = 1
    record.renewTime = MicroTime.string(now)
    renewedAt = nil
    return record
  }
}

/// Kubernetes' MicroTime: RFC 3339 with six fractional digits, in UTC.
enum MicroTime {
  static func string(_ date: Date) -> String {
    let seconds = floor(date.timeIntervalSince1970)
    let micros = Int((date.timeIntervalSince1970 - seconds) * 1_000_000)
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    formatter.timeZone = TimeZone(identifier: "UTC")
    let base = formatter.string(from: Date(timeIntervalSince1970: seconds))
    return base.dropLast() + String(format: ".%06dZ", micros)
  }
}
