import Foundation

/// Where a variant learns its capacity: its signals' places in the engine's inputs.
struct VariantLearningPositions {
  var load: Int?
  var running: Int?
  /// Per objective of the process's SLO, in its order.
  var measured: [Int?]

  init(_ learning: VariantLearning, positions: [String: Int]) {
    load = positions[learning.load]
    running = positions[learning.running]
    measured = learning.measured.map { $0.flatMap { positions[$0] } }
  }
}

/// A variant's capacity learned on its process's SLO, from its own replicas: what one replica
/// takes within every bound, in requests a second, against what one replica of the unit
/// variant takes, times the unit variant's declared capacity.
///
/// What one replica takes within the bounds is the most requests it may run at once within
/// them (its own latency model, as the process's: `latency = α + β · concurrency`) over how
/// long a request stays in flight on it (Little's law, from its own load and running count).
/// So a slower kind counts twice over: its first token comes later at any load, and each
/// request holds a slot longer. The concurrency is solved for up to twice the most any of the
/// variants has been seen to run a replica, the same for each: a line is not trusted far past
/// what it was fitted on (a server's slots end it), and where no bound binds that close, the
/// variants differ by how long they hold a request alone.
enum VariantCapacity {
  /// A learned capacity replaces the one in use only where it differs by more than this share:
  /// each change is a new fleet to the process's model, which waits a measured span before it
  /// learns again, and a mix is not reordered on noise.
  static let change = 0.1
  /// How far from its declared capacity a learned one may go, either way: a fit gone wrong
  /// moves the mix, not the process out of reach.
  static let reach = 10.0
  /// The concurrency the bounds are solved up to, for variants that have run `largest` a
  /// replica at most.
  static func limit(largest: Double) -> Double { 2 * max(largest, 1) }

  /// Requests a second one replica takes within every bound the SLO sets other than a queue
  /// wait, running at most `limit` at once; nil until its latency models and its request
  /// duration are ready.
  static func rate(_ learned: SLOState?, _ slo: SLOScaling, limit: Double) -> Double? {
    guard let learned, let duration = learned.duration.seconds, duration > 0 else { return nil }
    var most = limit
    for objective in slo.objectives where objective.latency != .queueWait {
      guard let fit = learned.latencies[objective.latency.rawValue]?.status.fit else { return nil }
      most = min(most, fit.capacity(within: objective.bound, limit: limit))
    }
    guard most > 0 else { return nil }
    return most / duration
  }

  /// The most a replica has been seen to run at once, over every latency model.
  static func largest(_ learned: SLOState?) -> Double {
    learned?.latencies.values.map(\.largestConcurrency).max() ?? 0
  }

  /// The capacity a variant uses next: learned where its rate and the unit variant's are
  /// known, within `reach` of its declared capacity, to two significant figures; the one in use
  /// where the new one is within `change` of it; the declared one before anything is learned.
  static func next(declared: Double, inUse: Double?, rate: Double?, unitRate: Double?, unitCapacity: Double)
    -> Double
  {
    let current = inUse ?? declared
    guard let rate, let unitRate, unitRate > 0 else { return current }
    let learned = min(max(unitCapacity * rate / unitRate, declared / reach), declared * reach)
    let rounded = twoFigures(learned)
    guard rounded.isFinite, rounded > 0, abs(rounded - current) > change * current else { return current }
    return rounded
  }

  static func twoFigures(_ value: Double) -> Double {
    guard value > 0, value.isFinite else { return value }
    let step = pow(10, (log10(value)).rounded(.down) - 1)
    return (value / step).rounded() * step
  }
}

extension ScalingEngine {
  /// Each variant's capacity this tick, in `group.members`' order: as declared, or, for a
  /// variant that learns, what it has learned once its own models and the unit variant's are
  /// ready. Adds this tick's samples to each learning variant's models first.
  func variantCapacities(
    _ group: PreparedVariantGroup, statuses: [ReplicaStatus], signals: SignalTable, state: inout EngineState,
    now: Date
  ) -> [Double] {
    let declared = group.members.map { prepared[$0].target.variant?.capacity ?? 1 }
    guard let slo = group.group.process.slo, let unit = group.unit else { return declared }
    var learnedStates: [SLOState?] = Array(repeating: nil, count: group.members.count)
    for (position, member) in group.members.enumerated() {
      guard let learning = group.learning[position] else { continue }
      func value(_ position: Int?) -> Double? { position.flatMap { signals[$0] } }
      let observation = SLOObservation(
        load: value(learning.load), running: value(learning.running), waiting: nil,
        measured: learning.measured.map(value), status: statuses[position], now: now,
        tick: group.prepared.tick)
      state.targets.update(atTarget: member, default: TargetState()) { own in
        var learned = own.slo ?? SLOState()
        SLOSizer.learn(observation, slo, state: &learned)
        own.slo = learned
        learnedStates[position] = learned
      }
    }
    let limit = VariantCapacity.limit(largest: learnedStates.map(VariantCapacity.largest).max() ?? 0)
    let rates = learnedStates.map { VariantCapacity.rate($0, slo, limit: limit) }
    var capacities = declared
    for (position, member) in group.members.enumerated()
    where group.learning[position] != nil && position != unit {
      state.targets.update(atTarget: member, default: TargetState()) { own in
        let next = VariantCapacity.next(
          declared: declared[position], inUse: own.learnedCapacity, rate: rates[position],
          unitRate: rates[unit], unitCapacity: declared[unit])
        own.learnedCapacity = next == declared[position] && own.learnedCapacity == nil ? nil : next
        capacities[position] = next
      }
    }
    return capacities
  }

  /// The capacities the engine uses for a group's variants in a state it decided: learned or
  /// declared, in `group.members`' order.
  func capacitiesInUse(_ group: PreparedVariantGroup, in state: EngineState) -> [Double] {
    group.members.map { member in
      state.targets.value(atTarget: member, of: order)?.learnedCapacity
        ?? prepared[member].target.variant?.capacity ?? 1
    }
  }
}
