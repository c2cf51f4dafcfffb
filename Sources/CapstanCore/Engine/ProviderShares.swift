import Foundation

/// A provider's limit divided among the budgets whose processes share it, for the record of the
/// scale-up it held.
public struct ProviderShare: Sendable, Equatable {
  public var provider: String
  /// The limit divided (`tokens_per_minute`, …), and what Capstan plans to use of it.
  public var what: String
  public var limit: Double
  public var margin: Double
  /// From the top of the tree down to the target's own budget.
  public var parts: [BudgetShare.Part]
  /// The target's own share, in the limit's unit, and what one replica takes of it.
  public var units: Double
  public var perReplica: Double
  /// The replicas the share allows, and those the target asks for.
  public var replicas: Int
  public var asked: Int
}

extension ScalingEngine {
  /// A provider's limits, each divided in turn from the top of the `budgets:` tree down: the
  /// budgets at the top and the processes in no budget, then each budget's children and its
  /// own processes. Budgets weigh their `rate_limit_weight`, processes 1 each. A target's
  /// share of each limit becomes a ceiling; the lowest holds.
  func divide(
    _ provider: ProviderLimits, targets: [Int], floors: [Int], asks: [Int], bindings: inout [TreeBinding]
  ) {
    for kind in [Ceilings.RateLimitKind.tokensPerMinute, .requestsPerMinute, .concurrentRequests] {
      guard let limit = kind.limit(of: provider) else { continue }
      var perReplica: [Int: Double] = [:]
      for index in targets {
        if let per = kind.perReplica(of: policy.targets[index]), per > 0 { perReplica[index] = per }
      }
      guard !perReplica.isEmpty else { continue }
      let division = ProviderDivision(
        tree: budgets, perReplica: perReplica, floors: floors, asks: asks)
      let capacity = limit * provider.safetyMargin
      division.divide(at: nil, capacity: capacity, parts: []) { index, units, parts in
        guard let per = perReplica[index] else { return }
        let ceiling = Int(saturating: (units / per + 1e-9).rounded(.down))
        // Where the room holds every ask, each share is its ask and nothing is held.
        guard ceiling < asks[index], ceiling < (bindings[index].providerCeiling ?? .max) else { return }
        bindings[index].providerCeiling = ceiling
        bindings[index].providerShare = ProviderShare(
          provider: provider.name, what: kind.key, limit: limit, margin: provider.safetyMargin, parts: parts,
          units: units, perReplica: per, replicas: ceiling, asked: asks[index])
      }
    }
  }
}

/// One limit of one provider, divided down the budgets' tree among the targets that take it.
private struct ProviderDivision {
  let tree: PreparedBudgets
  /// The targets that take the limit, each with what one replica takes.
  let perReplica: [Int: Double]
  let floors: [Int]
  let asks: [Int]

  /// What the targets below a budget hold and ask, in the limit's unit.
  func claim(of targets: [Int], weight: Double) -> FairDivision.Claim {
    var claim = FairDivision.Claim(floor: 0, demand: 0, step: .infinity, weight: weight)
    for index in targets {
      guard let per = perReplica[index] else { continue }
      claim.floor += Double(floors[index]) * per
      claim.demand += Double(asks[index]) * per
      // A budget grows by its smallest process's replica at a time.
      claim.step = min(claim.step, per)
    }
    return claim
  }

  /// Divides `capacity` among the budgets and targets right below `position` (the top of the
  /// tree for nil), and on down; `give` hears each target's share.
  func divide(
    at position: Int?, capacity: Double, parts: [BudgetShare.Part],
    give: (Int, Double, [BudgetShare.Part]) -> Void
  ) {
    let children = tree.tree.budgets.indices.filter { tree.tree.parents[$0] == position }
      .filter { tree.subtreeTargets[$0].contains { perReplica[$0] != nil } }
    let own = perReplica.keys.sorted().filter { tree.chains[$0].first == position }
    var claims = children.map {
      claim(of: tree.subtreeTargets[$0], weight: tree.tree.budgets[$0].rateLimitWeight)
    }
    claims += own.map { claim(of: [$0], weight: 1) }
    let shares = FairDivision.divide(claims, capacity: capacity)
    let totalWeight = claims.reduce(0) { $0 + $1.weight }
    for (offset, child) in children.enumerated() {
      // A budget alone at its level is given all of it, which a record need not say.
      let part = BudgetShare.Part(
        name: tree.tree.budgets[child].name, units: shares[offset], weight: claims[offset].weight,
        siblingsWeight: totalWeight)
      divide(
        at: child, capacity: shares[offset], parts: claims.count > 1 ? parts + [part] : parts, give: give)
    }
    for (offset, index) in own.enumerated() {
      give(index, shares[children.count + offset], parts)
    }
  }
}
