import Foundation

/// The arithmetic of filling a process's capacity from its variants: plain numbers in, counts
/// out, so the table tests reach every case without an engine.
///
/// A scale-up adds replicas in fill order (cheapest per unit of capacity first, or `prefer:`'s
/// order), each variant up to what its ceilings allow this tick, until the capacity reaches
/// what the process wants. A scale-down removes replicas in the reverse order, the dearest per
/// unit first, while the capacity left still covers what it wants. Neither replaces a running
/// replica with a cheaper one: capacity never dips below what is wanted to save money, and the
/// mix becomes the cheapest one through the ordinary moves (growth takes the cheap variant,
/// shrinking gives up the dear one).
/// A process's replicas in units of capacity, not rounded.
struct ExactCapacity: Equatable {
  var current: Double
  var ready: Double
}

enum VariantFill {
  struct Member: Equatable {
    /// What one replica carries.
    var capacity: Double
    var current: Int
    var min: Int
    /// The most replicas it may run after this tick: its max, its ceilings and a frozen budget,
    /// never below `current`. Read only by a scale-up.
    var reach: Int
  }

  /// Capacity one unit short of a whole counts as reached: 0.1 × 30 is 2.9999999999999996.
  static let epsilon = 1e-9

  static func capacity(_ members: [Member], _ counts: [Int]) -> Double {
    zip(members, counts).reduce(0) { $0 + $1.0.capacity * Double($1.1) }
  }

  /// Counts that reach `wanted` capacity from the current ones by adding replicas in the
  /// members' order, each up to its reach; each at least its min. Short of `wanted` where
  /// every member is at its reach.
  ///
  /// One member at a time, so a driver can work out the next member's reach after this one's
  /// growth (variants that share a GPU pool or a provider).
  static func grow(_ member: Member, from capacity: Double, toward wanted: Double) -> Int {
    var count = Swift.max(member.current, member.min)
    var total = capacity + member.capacity * Double(count - member.current)
    while total < wanted - epsilon && count < member.reach {
      count += 1
      total += member.capacity
    }
    return count
  }

  /// Counts that shrink toward `wanted` by removing replicas from the last member first, each
  /// down to its min, while the capacity left is at least `wanted`.
  static func shrink(_ members: [Member], toward wanted: Double) -> [Int] {
    var counts = members.map { Swift.max($0.current, $0.min) }
    var total = capacity(members, counts)
    for index in members.indices.reversed() {
      let member = members[index]
      while counts[index] > member.min && total - member.capacity >= wanted - epsilon {
        counts[index] -= 1
        total -= member.capacity
      }
    }
    return counts
  }

  /// The variants' replicas as the process's rules see them: capacity in whole units (draining
  /// capacity rounded up, as it still holds its place).
  static func capacityStatus(_ statuses: [ReplicaStatus], _ capacities: [Double]) -> ReplicaStatus {
    let exact = exactCapacity(statuses, capacities)
    let draining = zip(statuses, capacities).reduce(0) { $0 + Double($1.0.draining) * $1.1 }
    return ReplicaStatus(
      current: units(exact.current), ready: units(exact.ready),
      draining: Int(saturating: (draining - epsilon).rounded(.up)))
  }

  /// The variants' replicas and ready replicas in units of capacity, exactly, for an SLO's
  /// models: three L4s at 0.5 are 1.5 units, and one of them starting leaves 1 ready.
  static func exactCapacity(_ statuses: [ReplicaStatus], _ capacities: [Double]) -> ExactCapacity {
    var capacity = ExactCapacity(current: 0, ready: 0)
    for (status, size) in zip(statuses, capacities) {
      capacity.current += Double(status.current) * size
      capacity.ready += Double(status.readyWithinCurrent) * size
    }
    return capacity
  }

  /// The process's count as its rules see it: whole units of capacity, rounded down, so a
  /// capacity short of a unit counts as short of it.
  static func units(_ capacity: Double) -> Int { Int(saturating: (capacity + epsilon).rounded(.down)) }
}
