import CapstanCore
import Foundation

/// What a policy is compared with: schedules that know the whole trace (the oracle, the best
/// static pool, the zero-wait schedule), and the HPA's and KEDA's defaults on the same metric,
/// target, min and max (run through the same engine, as derived policies).
public enum Baseline: String, Sendable, CaseIterable {
  case oracle
  case staticPool = "static"
  case zeroWait = "zero-wait"
  case hpa, keda

  /// Every name, for a message that lists them.
  public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

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
    // A variant is sized by its process's fill: the process below takes the baseline's rules.
    for index in derived.targets.indices where derived.targets[index].variant == nil {
      var target = derived.targets[index]
      target.tracking?.tolerance = PolicyDefaults.tolerance
      target.up = DirectionRules(step: 4, stepPercent: 100, stabilization: 0)
      target.down = DirectionRules(stepPercent: 100, stabilization: 300)
      target.budget = nil
      target.maxCostPerHourUSD = nil
      target.rateLimit = nil
      target.resources.gpuPool = nil
      target.predictive = nil
      adjust(&target)
      derived.targets[index] = target
    }
    // A process with variants tracks its capacity as the HPA would, filled as the policy fills it.
    for index in derived.variantGroups.indices {
      var process = derived.variantGroups[index].process
      process.tracking?.tolerance = PolicyDefaults.tolerance
      process.up = DirectionRules(step: 4, stepPercent: 100, stabilization: 0)
      process.down = DirectionRules(stepPercent: 100, stabilization: 300)
      process.predictive = nil
      adjust(&process)
      derived.variantGroups[index].process = process
    }
    return derived
  }
}

/// The zero-wait schedule for one process: it knows every arrival. Served at once on unlimited
/// capacity, the requests in service at each moment need ceil(in service / slots) ready
/// replicas; at each tick it runs the most that any moment needs from that tick until a replica
/// asked for now would be ready, so capacity is there when work arrives and nothing is held
/// longer. No request waits under it. It reads the trace as a stream, a startup delay ahead of
/// the simulation.
struct ZeroWaitSchedule {
  let interval: TimeInterval
  let slots: Int
  /// Ticks between asking for a replica and the first span it can serve in full.
  let lookahead: Int
  private var arrivals: Trace.Stream
  private var pending: Trace.Request?
  private let kind: Trace.Kind
  private let settings: SimulationSettings
  /// When requests in service on unlimited capacity end, a min-heap.
  private var ends = MinHeap<Double>()
  /// Replicas needed in each tick's span from `firstTick`, as far as computed.
  private var needed: [Int] = []
  private var firstTick = 0

  init(settings: SimulationSettings, interval: TimeInterval, trace: Trace) throws {
    self.interval = interval
    slots = settings.slots
    lookahead = Int(saturating: (settings.startup / interval).rounded(.up))
    arrivals = try trace.stream()
    pending = try arrivals.next()
    kind = trace.kind
    self.settings = settings
  }

  /// The replicas to run from tick `tick` (ticks come in order).
  mutating func replicas(atTick first: Int) throws -> Int {
    try compute(through: first + lookahead)
    let drop = min(max(first - firstTick, 0), needed.count)
    needed.removeFirst(drop)
    firstTick += drop
    return needed.prefix(lookahead + 1).max() ?? 0
  }
  /// Sweeps arrivals (+1) and ends (-1) in time order, ends first at the same moment, up to the
  /// end of span `last`: a span needs the most replicas any of its moments needs, and at least
  /// what was in service as it began.
  private mutating func compute(through last: Int) throws {
    while firstTick + needed.count <= last {
      let span = firstTick + needed.count
      // What ends as the span begins frees its slot for the span.
      while let end = ends.peek, end <= Double(span) * interval, end <= pending?.arrival ?? .infinity {
        _ = ends.pop()
      }
      var need = (ends.count + slots - 1) / slots
      while true {
        let arrival = pending?.arrival ?? .infinity
        let end = ends.peek ?? .infinity
        let time = min(arrival, end)
        guard time.isFinite, Int(saturating: time / interval) <= span else { break }
        if end <= arrival {
          _ = ends.pop()
        } else if let request = pending {
          ends.push(arrival + Fleet.serviceTime(request, kind: kind, settings: settings))
          pending = try arrivals.next()
        }
        need = max(need, (ends.count + slots - 1) / slots)
      }
      needed.append(need)
    }
  }
}
