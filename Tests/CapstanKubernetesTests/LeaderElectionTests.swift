import CapstanCore
import CapstanTestKit
import Foundation
import Logging
import Testing

@testable import CapstanKubernetes

@Suite("Leader election")
struct LeaderElectionTests {
  static let settings: LeaderElectionSettings = {
    var settings = LeaderElectionSettings()
    settings.leaseDuration = 15
    settings.renewDeadline = 10
    settings.retryPeriod = 2
    return settings
  }()
  let t0 = Date(timeIntervalSince1970: 1_800_000_000)

  @Test("an absent lease is created; a held one is waited on until it has not changed for its duration")
  func takeover() {
    var a = LeaseElection(identity: "a", settings: Self.settings)
    guard case .create(let created) = a.plan(current: nil, now: t0) else {
      Issue.record("no create")
      return
    }
    a.wrote(created, sentAt: t0, now: t0)
    #expect(a.isLeading(at: t0.addingTimeInterval(9.9)))
    #expect(
      !a.isLeading(at: t0.addingTimeInterval(10)), "a leader that has not renewed stops at its deadline")

    var b = LeaseElection(identity: "b", settings: Self.settings)
    #expect(b.plan(current: created, now: t0.addingTimeInterval(1)) == .wait(holder: "a"))
    // Judged by b's own clock from when b first saw this record, not from the times in it.
    #expect(b.plan(current: created, now: t0.addingTimeInterval(15.9)) == .wait(holder: "a"))
    guard case .update(let taken) = b.plan(current: created, now: t0.addingTimeInterval(16)) else {
      Issue.record("no takeover")
      return
    }
    #expect(taken.holderIdentity == "b")
    #expect(taken.leaseTransitions == 1)
    #expect(taken.acquireTime == taken.renewTime)
    #expect(!b.isLeading(at: t0.addingTimeInterval(16)), "not leading until the write succeeds")
    b.wrote(taken, sentAt: t0.addingTimeInterval(16), now: t0.addingTimeInterval(16.1))
    #expect(b.isLeading(at: t0.addingTimeInterval(17)))
  }

  @Test("a renewal keeps acquireTime and the transition count; each change restarts a follower's wait")
  func renewals() {
    var a = LeaseElection(identity: "a", settings: Self.settings)
    var b = LeaseElection(identity: "b", settings: Self.settings)
    guard case .create(var record) = a.plan(current: nil, now: t0) else { return }
    a.wrote(record, sentAt: t0, now: t0)
    for second in stride(from: 2.0, through: 40, by: 2) {
      let now = t0.addingTimeInterval(second)
      guard case .update(let renewed) = a.plan(current: record, now: now) else {
        Issue.record("the leader did not renew at \(second)s")
        return
      }
      #expect(renewed.acquireTime == record.acquireTime)
      #expect(renewed.leaseTransitions == 0)
      a.wrote(renewed, sentAt: now, now: now)
      record = renewed
      #expect(b.plan(current: record, now: now.addingTimeInterval(0.5)) == .wait(holder: "a"))
    }
  }

  @Test("a released lease is taken at once")
  func release() {
    var a = LeaseElection(identity: "a", settings: Self.settings)
    guard case .create(let record) = a.plan(current: nil, now: t0) else { return }
    a.wrote(record, sentAt: t0, now: t0)
    var b = LeaseElection(identity: "b", settings: Self.settings)
    #expect(b.plan(current: record, now: t0.addingTimeInterval(1)) == .wait(holder: "a"))
    let released = a.release(now: t0.addingTimeInterval(2))
    #expect(released?.holderIdentity == "")
    #expect(!a.isLeading(at: t0.addingTimeInterval(2)))
    guard case .update(let taken)? = released.map({ b.plan(current: $0, now: t0.addingTimeInterval(2.5)) })
    else {
      Issue.record("b waited on a released lease")
      return
    }
    #expect(taken.holderIdentity == "b")
  }

  @Test("two candidates creating the Lease at the same moment: the API lets one in, the other follows")
  func simultaneousCreate() async throws {
    let fixture = try await APIFixture.start()
    var settings = LeaderElectionSettings()
    settings.retryPeriod = 0.5
    let a = LeaderElector(
      client: fixture.client, settings: settings, namespace: "default", identity: "a",
      logger: Logger(label: "a"))
    let b = LeaderElector(
      client: fixture.client, settings: settings, namespace: "default", identity: "b",
      logger: Logger(label: "b"))
    // Both read "no lease" before either writes it.
    try await fixture.server.setFaults([.init(method: "GET", path: "/leases/capstan$", delay: 0.5, count: 2)])
    async let stepA: Void = a.step()
    async let stepB: Void = b.step()
    _ = await (stepA, stepB)
    // Exactly one wrote the Lease (judged by what each wrote, not at an instant a slow step
    // could move past the winner's deadline).
    #expect((a.renewedAt != nil) != (b.renewedAt != nil))
    let creates = try await fixture.server.requests().filter { $0.method == "POST" }.compactMap(\.status)
    #expect(creates.sorted() == [201, 409])
    // The loser learns who leads at its next try.
    let (winner, loser) = a.renewedAt != nil ? (a, b) : (b, a)
    await loser.step()
    let lease = try await fixture.server.object("Lease", named: "capstan")
    #expect((lease?["spec"] as? [String: Any])?["holderIdentity"] as? String == winner.identity)
    #expect(loser.holder == winner.identity)
  }

  @Test(
    "two electors against one API server: one leads; when it stops renewing, the other takes over once the lease has run out, never before"
  )
  func twoElectors() async throws {
    let fixture = try await APIFixture.start()
    var settings = LeaderElectionSettings()
    settings.leaseDuration = 3
    settings.renewDeadline = 2
    settings.retryPeriod = 0.5
    let a = LeaderElector(
      client: fixture.client, settings: settings, namespace: "default", identity: "a",
      logger: Logger(label: "a"))
    let b = LeaderElector(
      client: fixture.client, settings: settings, namespace: "default", identity: "b",
      logger: Logger(label: "b"))
    await a.step()
    await b.step()
    // a took the lease; whether it still leads at some later instant depends on how long the
    // steps took, so it is judged by what it wrote and what b saw.
    #expect(a.holder == "a" && a.renewedAt != nil)
    #expect(!b.isLeading(at: Date()))
    #expect(b.holder == "a")
    let lease = try await fixture.server.object("Lease", named: "capstan")
    #expect((lease?["spec"] as? [String: Any])?["holderIdentity"] as? String == "a")
    #expect((lease?["spec"] as? [String: Any])?["leaseDurationSeconds"] as? Int == 3)

    // Both keep trying for a while: the leader stays the leader, and never both at once.
    // Each is judged at one instant, so a loaded machine's pauses cannot make both look free.
    for _ in 0..<4 {
      try await Task.sleep(nanoseconds: 500_000_000)
      await a.step()
      await b.step()
      let now = Date()
      #expect(!(a.isLeading(at: now) && b.isLeading(at: now)), "both led at once")
      #expect(b.holder == "a")
    }

    // a stops (killed): b takes over once the lease has run out since a's last renewal, never
    // before; how long after depends on the machine, so only a generous bound keeps the loop.
    let lastRenewal = try #require(a.renewedAt)
    let stopped = Date()
    var tookOver: Date?
    while Date().timeIntervalSince(stopped) < 60 {
      await b.step()
      #expect(!(a.isLeading(at: Date()) && b.isLeading(at: Date())), "two leaders at once")
      if b.holder == "b" {
        tookOver = Date()
        break
      }
      try await Task.sleep(nanoseconds: 500_000_000)
    }
    let after = try #require(tookOver).timeIntervalSince(lastRenewal)
    #expect(after >= 3, "b took over \(after)s after a's last renewal, before the lease ran out")
    #expect(!a.isLeading(at: Date()))
    let taken = try await fixture.server.object("Lease", named: "capstan")
    #expect((taken?["spec"] as? [String: Any])?["holderIdentity"] as? String == "b")
    #expect((taken?["spec"] as? [String: Any])?["leaseTransitions"] as? Int == 1)
  }
}
