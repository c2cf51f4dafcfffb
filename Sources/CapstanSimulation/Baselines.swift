import CapstanCore
import Foundation

/// What a policy is compared with: the HPA's and KEDA's defaults on the same metric, target,
/// min and max (run through the same engine, as derived policies), and an oracle that knows the
/// whole trace.
public enum Baseline: String, Sendable, CaseIterable {
  case oracle, hpa, keda

  /// The Kubernetes HPA (`autoscaling/v2`) with its default behaviour: target tracking on the
  /// policy's metric and target, tolerance 0.1, a 15 s sync; scale-up with no stabilization and
  /// at most max(4 pods, 100%) per sync; scale-down after a 300 s stabilization window, at most
  /// 100% per sync. No rules, cooldowns, budgets or ceilings but `max`: the HPA knows none. Its
  /// `minReplicas` is at least 1 (scaling to zero is an alpha feature). nil for a process with no
  /// target to track.
  static func hpa(_ policy: Policy) -> Policy {
    derived(policy, interval: 15) { target in
      target.min = max(target.min, 1)
    }
  }

  /// KEDA's defaults: a 30 s polling interval, the HPA's behaviour above one replica, 300 s
  /// without activity before going to zero, activation at 0.
  static func keda(_ policy: Policy) -> Policy {
    derived(policy, interval: 30) { target in
      target.tracking?.activationThreshold = 0
    }
  }

  private static func derived(
    _ policy: Policy, interval: TimeInterval, _ adjust: (inout ScalingTarget) -> Void
  )
    -> Policy
  {
    var derived = policy
    derived.controller.interval = interval
    for index in derived.targets.indices {
      var target = derived.targets[index]
      target.tracking?.tolerance = PolicyDefaults.tolerance
      target.up = DirectionRules(step: 4, stepPercent: 100, stabilization: 0)
      target.down = DirectionRules(stepPercent: 100, stabilization: 300)
      target.budget = nil
      target.maxCostPerHourUSD = nil
      target.rateLimit = nil
      target.resources.gpuPool = nil
      adjust(&target)
      derived.targets[index] = target
    }
    return derived
  }
}

/// The oracle's schedule for one process: it knows every arrival. Served at once on unlimited
/// capacity, the requests in service at each moment need ceil(in service / slots) ready
/// replicas; at each tick the oracle runs the most that any moment needs from that tick until a
/// replica asked for now would be ready and one tick more, so capacity is there when work
/// arrives and nothing is held longer. A lower bound in the spirit of the issue, not an exact
/// optimum: it is run through the same simulator, so its SLO figure is measured, not assumed.
struct OracleSchedule {
  let interval: TimeInterval
  /// Replicas needed in each tick's span.
  private let needed: [Int]
  private let lookahead: Int

  init(fleet: Fleet) {
    interval = fleet.interval
    var changes: [(time: Double, delta: Int)] = []
    for request in fleet.trace.requests {
      changes.append((request.arrival, 1))
      changes.append((request.arrival + fleet.serviceTime(request), -1))
    }
    changes.sort { ($0.time, $0.delta) < ($1.time, $1.delta) }
    let end = changes.last?.time ?? 0
    var needed = Array(repeating: 0, count: Int(end / interval) + 2)
    var inService = 0
    for change in changes {
      inService += change.delta
      let bucket = min(Int(change.time / interval), needed.count - 1)
      let replicas = (inService + fleet.settings.slots - 1) / fleet.settings.slots
      needed[bucket] = max(needed[bucket], replicas)
    }
    // What runs into a bucket from the one before it is needed there too.
    var carried = 0
    inService = 0
    var index = 0
    for bucket in needed.indices {
      needed[bucket] = max(needed[bucket], carried)
      while index < changes.count && changes[index].time < Double(bucket + 1) * interval {
        inService += changes[index].delta
        index += 1
      }
      carried = (inService + fleet.settings.slots - 1) / fleet.settings.slots
    }
    self.needed = needed
    lookahead = Int((fleet.settings.startup / fleet.interval).rounded(.up)) + 1
  }

  func replicas(at time: Double) -> Int {
    let first = Int(time / interval)
    guard first < needed.count else { return 0 }
    return needed[first..<min(needed.count, first + lookahead + 1)].max() ?? 0
  }
}
