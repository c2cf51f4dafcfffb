import CapstanBackends
import CapstanCore
import Foundation
import Logging

/// Leader election as the controller sees it: who leads, and the records of a change.
extension Controller {
  /// The leader election service reports what it saw after each try. Becoming or ceasing to be
  /// the leader is logged and written to the audit log; a follower's start is only logged.
  public func observeLeadership(leading: Bool, identity: String, holder: String?, now: Date) {
    metrics.leader(leading)
    defer {
      wasLeading = leading
      leaderIdentity = holder
    }
    if holder != leaderIdentity || leading != wasLeading {
      logger.notice(
        "\(leading ? "leading" : "following")",
        metadata: ["identity": "\(identity)", "leader": "\(holder ?? "none")"])
    }
    guard leading != wasLeading, leading || wasLeading == true else { return }
    record(
      .controller(
        leading ? .leaderElected : .leaderLost, reason: .leaderElection,
        detail: leading
          ? "\(identity) leads: it acts from now on"
          : holder.map { $0 == identity ? nil : $0 }.flatMap { $0 }.map {
            "\(identity) stopped leading; \($0) leads: it decides but acts on nothing"
          }
            ?? "\(identity) stopped leading: it could not renew the lease within its renew deadline; it decides but acts on nothing until it leads again",
        at: now))
  }

  /// Whether this controller acts now: always without leader election.
  public func isLeading(at now: Date) -> Bool { leader?.isLeading(at: now) ?? true }
}
