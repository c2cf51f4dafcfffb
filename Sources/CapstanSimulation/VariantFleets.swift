import CapstanCore
import Foundation

extension Simulator {
  /// A schedule's capacity as replicas of a process's variants (`kinds`, in fill order): the
  /// cheapest fill from none, each variant from its min up to what its max, GPU pool and
  /// provider allow it alone, until the capacity reaches `units`.
  static func mix(_ units: Double, of kinds: [Fleet.Kind], in policy: Policy) -> [Int] {
    var counts = kinds.map(\.target.min)
    var capacity = zip(kinds, counts).reduce(0) { $0 + $1.0.speed * Double($1.1) }
    for (index, kind) in kinds.enumerated() {
      let reach = StaticCeiling.binding(for: kind.target, in: policy).replicas
      while capacity < units - 1e-9 && counts[index] < reach {
        counts[index] += 1
        capacity += kind.speed
      }
    }
    return counts
  }

  /// What a schedule of a process with variants counts: the smallest variant's capacity, so
  /// that a schedule can hold any number of that variant (whole units would hold only pairs of
  /// L4s at 0.5).
  static func step(of kinds: [Fleet.Kind]) -> Double { kinds.map(\.speed).min() ?? 1 }

  /// The process's min and max capacity in steps: the schedules' bounds.
  static func stepBounds(of process: ScalingTarget, kinds: [Fleet.Kind]) -> (min: Int, max: Int) {
    let step = step(of: kinds)
    let low = Int(saturating: (Double(process.min) / step - 1e-9).rounded(.up))
    return (low, max(low, Int(saturating: (Double(process.max) / step + 1e-9).rounded(.down))))
  }

  /// The kinds a process with variants simulates as, in fill order; nil for any other process.
  func kinds(of name: String) -> [Fleet.Kind]? {
    policy.variantGroup(named: name).map { Self.kinds(of: $0, in: policy) }
  }

  /// A variant's replicas serve at its capacity's speed (or the speed `simulation.speeds`
  /// gives it), and its replica-seconds weigh its price.
  static func kinds(of group: VariantGroup, in policy: Policy) -> [Fleet.Kind] {
    let speeds = group.process.simulation?.speeds ?? [:]
    return group.fillOrder.compactMap { member in
      policy.target(named: member).map {
        Fleet.Kind(
          target: $0, speed: $0.variant.flatMap { speeds[$0.variant] ?? $0.capacity } ?? 1,
          weight: $0.costPerHourUSD ?? 0)
      }
    }
  }
}

extension Policy {
  /// The process a trace of `name` feeds: a target, or a process with variants.
  func simulatedProcess(named name: String) -> ScalingTarget? {
    if let target = target(named: name), target.variant == nil { return target }
    return variantGroup(named: name)?.process
  }
}
