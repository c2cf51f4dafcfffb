import Foundation

/// A frozen `budgets:` budget above a target: its scale-ups wait for the next budget day.
public struct FrozenBudget: Sendable, Equatable {
  public var name: String
  public var spentUSD: Double
  public var limitUSD: Double
}

/// How a cap of the budgets above a target was divided this tick, for the record of the
/// scale-up it held.
public struct BudgetShare: Sendable, Equatable {
  public enum Unit: String, Sendable { case replicas, gpus = "GPUs" }

  /// A budget's part on the way down from the cap: what it was given and its weight beside
  /// its siblings'.
  public struct Part: Sendable, Equatable {
    public var name: String
    /// In the share's unit: replicas, GPUs, a provider's tokens or requests per minute.
    public var units: Double
    public var weight: Double
    public var siblingsWeight: Double
  }

  public var unit: Unit
  /// The budget whose cap binds, and the cap.
  public var budget: String
  public var cap: Int
  /// From the budget under the cap down to the target's own budget.
  public var parts: [Part]
  /// The target's own share, and what it asked for, in `unit`.
  public var units: Int
  public var asked: Int
}

/// What the budgets a target is in say at this tick.
struct TreeBinding {
  /// The nearest frozen budget above it.
  var frozenBy: FrozenBudget?
  /// The most replicas (draining ones included) its share of its budgets' caps leaves it.
  var ceiling: Int?
  /// How that share was reached, where it holds the target below what it asks.
  var share: BudgetShare?
  /// The most replicas (draining ones included) its share of a provider that several budgets'
  /// processes share leaves it.
  var providerCeiling: Int?
  /// How that share was reached, where it holds the target below what it asks.
  var providerShare: ProviderShare?
}

/// The `budgets:` tree as the engine walks it, worked out once from the policy.
struct PreparedBudgets {
  let tree: BudgetTree
  /// Per budget: the budgets right below it, and the targets (by index) right in it.
  let childBudgets: [[Int]]
  let directTargets: [[Int]]
  /// Per budget: every target below it, at any depth.
  let subtreeTargets: [[Int]]
  /// Per target: its budget and each above it, nearest first; empty where it has none.
  let chains: [[Int]]
  /// The providers that processes of more than one budget share (or of a budget and of none),
  /// whose limits are divided by `rate_limit_weight`, each with its targets.
  let dividedProviders: [(provider: ProviderLimits, targets: [Int])]
  /// Per target: whether a tick divides something it takes (a cap, a provider's limit), so
  /// what it asks for is found first.
  let divided: [Bool]

  init(_ policy: Policy) {
    let tree = policy.budgets
    self.tree = tree
    var children = Array(repeating: [Int](), count: tree.budgets.count)
    for (position, parent) in tree.parents.enumerated() {
      if let parent { children[parent].append(position) }
    }
    childBudgets = children
    var direct = Array(repeating: [Int](), count: tree.budgets.count)
    var subtree = Array(repeating: [Int](), count: tree.budgets.count)
    var chains: [[Int]] = []
    var capped: [Bool] = []
    for (index, target) in policy.targets.enumerated() {
      let chain = tree.chain(from: target.budgetName)
      chains.append(chain)
      capped.append(
        chain.contains { tree.budgets[$0].maxReplicas != nil || tree.budgets[$0].maxGPUs != nil })
      if let own = chain.first { direct[own].append(index) }
      for position in chain { subtree[position].append(index) }
    }
    directTargets = direct
    subtreeTargets = subtree
    self.chains = chains
    // A target under a cap, or on a divided provider.
    var divided = capped
    dividedProviders = policy.providersDividedByBudget.map { provider in
      let targets = policy.targets.indices.filter { policy.targets[$0].rateLimit?.provider == provider.name }
      for index in targets { divided[index] = true }
      return (provider, targets)
    }
    self.divided = divided
  }

  var isEmpty: Bool { tree.isEmpty }
}

extension ScalingEngine {
  /// Step 1b, the budgets of `budgets:`: each budget's spend accrues from every target below
  /// it (replicas × cost per hour, and their cost-rate metrics) and its own metric, crossing a
  /// state or a freeze writes a `*` record, and each target learns the nearest frozen budget
  /// above it.
  func advanceBudgetTree(
    _ signals: SignalTable, replicas: UnsafeBufferPointer<ReplicaStatus?>, state: inout EngineState,
    now: Date, into events: inout [AuditEvent]
  ) -> [TreeBinding] {
    let tree = budgets.tree
    for (position, budget) in tree.budgets.enumerated() {
      var spends: [BudgetDayLedger.Spend] = []
      for index in budgets.subtreeTargets[position] {
        let target = policy.targets[index]
        // A target whose replicas could not be read this tick counts what it last ran: spend
        // does not stop because a read failed.
        let count = replicas[index]?.current ?? state.targets[target.name]?.lastReplicas ?? 0
        let metric = target.budget?.costRateMetric
        spends.append(
          BudgetDayLedger.Spend(
            key: target.name, computeUSDPerHour: Double(count) * (target.costPerHourUSD ?? 0), metric: metric,
            metricValue: metric.flatMap { signalPositions[$0] }.flatMap { signals[$0] }))
      }
      for below in tree.budgets.indices where tree.chain(from: tree.budgets[below].name).contains(position) {
        guard let metric = tree.budgets[below].costRateMetric else { continue }
        spends.append(
          BudgetDayLedger.Spend(
            key: metric, computeUSDPerHour: 0, metric: metric,
            metricValue: signalPositions[metric].flatMap { signals[$0] }))
      }
      var ledger = state.budgetTree[budget.name] ?? BudgetDayLedger()
      for event in ledger.advance(to: now, spends: spends, budget: budget) {
        events.append(.namedBudget(event, budget: budget, ledger: ledger, at: now))
      }
      state.budgetTree[budget.name] = ledger
    }
    return budgets.chains.map { chain in
      var binding = TreeBinding()
      for position in chain {
        let budget = tree.budgets[position]
        guard let ledger = state.budgetTree[budget.name], ledger.frozen else { continue }
        binding.frozenBy = FrozenBudget(
          name: budget.name, spentUSD: ledger.day?.spentUSD ?? 0, limitUSD: budget.dailyBudgetUSD ?? 0)
        break
      }
      return binding
    }
  }

  /// Step 1c, the budgets' caps and the providers they share: what each target under a cap or
  /// on a divided provider asks for this tick is found first (a decision on a copy of its
  /// state, with no share of a budget), then each cap's room is divided down the tree in
  /// proportion to the weights, then each divided provider's limits by `rate_limit_weight`
  /// (`divide(_:targets:floors:asks:bindings:)`, ProviderShares.swift), and each target's shares
  /// become its ceilings.
  func divideShares(
    _ signals: SignalTable, replicas: UnsafeBufferPointer<ReplicaStatus?>, state: EngineState, now: Date,
    bindings: inout [TreeBinding]
  ) {
    var floors = Array(repeating: 0, count: prepared.count)
    var asks = Array(repeating: 0, count: prepared.count)
    for (index, prepared) in self.prepared.enumerated() where budgets.divided[index] {
      guard let status = replicas[index] else {
        // Not read this tick: it holds what it last ran, and asks for nothing more.
        let held = state.targets[prepared.target.name]?.lastReplicas ?? 0
        (floors[index], asks[index]) = (held, held)
        continue
      }
      if prepared.target.variant != nil {
        // A variant is sized by its process's fill, not by rules of its own: it asks for room
        // up to its max, and the fill takes no more of the share than the capacity needs.
        (floors[index], asks[index]) = (
          status.current + status.draining, prepared.target.max + status.draining
        )
        continue
      }
      var scratch = state.targets.value(atTarget: index, of: order) ?? TargetState()
      var forecast = state.forecasts[prepared.target.name] ?? ForecastState()
      let floor = prepared.target.predictive.flatMap { predictive in
        forecast.advance(
          value: prepared.predictivePosition.flatMap { signals[$0] }, now: now, settings: predictive,
          min: prepared.target.min, max: prepared.target.max
        ).floor
      }
      var frozenOnly = bindings[index]
      frozenOnly.ceiling = nil
      frozenOnly.providerCeiling = nil
      let context = TargetContext(
        prepared: prepared, status: status, signals: signals, now: now,
        budget: state.budgets.value(atTarget: index, of: order).map {
          BudgetSnapshot(
            spentUSD: $0.spentUSD, limitUSD: prepared.target.budget?.dailyBudgetUSD ?? 0, state: $0.state)
        },
        others: prepared.peers.isEmpty ? SharedUsage() : sharedUsage(of: prepared.peers, replicas, []),
        floor: floor, floorReplicas: floor?.replicas, tree: frozenOnly)
      var scratchDecision = TickDecision()
      context.decide(&scratch, into: &scratchDecision)
      let wanted = scratchDecision.actions.last?.to ?? status.current
      floors[index] = min(status.current, wanted) + status.draining
      asks[index] = wanted + status.draining
    }
    for unit in [BudgetShare.Unit.replicas, .gpus] where budgets.tree.hasCaps {
      for (position, parent) in budgets.tree.parents.enumerated() where parent == nil {
        divide(
          position, unit: unit, capacity: nil, parts: [], floors: floors, asks: asks, bindings: &bindings)
      }
      // Replicas first: a target asks for no more GPUs than its share of replicas can hold.
      for index in asks.indices {
        if let ceiling = bindings[index].ceiling {
          asks[index] = max(floors[index], min(asks[index], ceiling))
        }
      }
    }
    // After the caps: a target asks a provider for no more than its share of them allows.
    for (provider, targets) in budgets.dividedProviders {
      divide(provider, targets: targets, floors: floors, asks: asks, bindings: &bindings)
    }
  }

  /// What one replica of target `index` takes of a cap in `unit`; 0: the cap does not bind it.
  private func unitsPerReplica(_ index: Int, _ unit: BudgetShare.Unit) -> Int {
    unit == .replicas ? 1 : policy.targets[index].resources.gpus
  }

  /// Divides the room `capacity` leaves budget `position` (its own cap where that is lower)
  /// among the budgets and targets right below it, and on down.
  private func divide(
    _ position: Int, unit: BudgetShare.Unit, capacity: (budget: String, cap: Int, room: Int)?,
    parts: [BudgetShare.Part], floors: [Int], asks: [Int], bindings: inout [TreeBinding]
  ) {
    let budget = budgets.tree.budgets[position]
    var bound = capacity
    if let own = unit == .replicas ? budget.maxReplicas : budget.maxGPUs, own <= (capacity?.room ?? .max) {
      bound = (budget.name, own, own)
    }
    let children = budgets.childBudgets[position]
    guard let bound else {
      for child in children {
        divide(child, unit: unit, capacity: nil, parts: [], floors: floors, asks: asks, bindings: &bindings)
      }
      return
    }
    let targets = budgets.directTargets[position].filter { unitsPerReplica($0, unit) > 0 }
    var claims: [FairDivision.Claim] = []
    for child in children {
      let below = budgets.subtreeTargets[child]
      var step = 0
      for index in below where unitsPerReplica(index, unit) > 0 {
        step = gcd(step, unitsPerReplica(index, unit))
      }
      let floor = below.reduce(0) { $0 + floors[$1] * unitsPerReplica($1, unit) }
      var demand = below.reduce(0) { $0 + asks[$1] * unitsPerReplica($1, unit) }
      // A child capped lower of its own asks no more than it can use.
      let childBudget = budgets.tree.budgets[child]
      if let cap = unit == .replicas ? childBudget.maxReplicas : childBudget.maxGPUs {
        demand = max(floor, min(demand, cap))
      }
      claims.append(
        FairDivision.Claim(
          floor: Double(floor), demand: Double(demand), step: Double(max(1, step)), weight: childBudget.weight
        ))
    }
    for index in targets {
      let per = unitsPerReplica(index, unit)
      claims.append(
        FairDivision.Claim(
          floor: Double(floors[index] * per), demand: Double(asks[index] * per), step: Double(per), weight: 1)
      )
    }
    // Whole units, each share a sum of whole steps.
    let shares = FairDivision.divide(claims, capacity: Double(bound.room)).map { Int($0.rounded()) }
    let totalWeight = claims.reduce(0) { $0 + $1.weight }
    for (offset, child) in children.enumerated() {
      let part = BudgetShare.Part(
        name: budgets.tree.budgets[child].name, units: Double(shares[offset]), weight: claims[offset].weight,
        siblingsWeight: totalWeight)
      divide(
        child, unit: unit, capacity: (bound.budget, bound.cap, shares[offset]), parts: parts + [part],
        floors: floors, asks: asks, bindings: &bindings)
    }
    for (offset, index) in targets.enumerated() {
      let share = shares[children.count + offset]
      let ceiling = share / unitsPerReplica(index, unit)
      // Where the room holds every ask, each share is its ask and nothing is held.
      guard ceiling < asks[index] else { continue }
      if ceiling < (bindings[index].ceiling ?? .max) {
        bindings[index].ceiling = ceiling
        bindings[index].share = BudgetShare(
          unit: unit, budget: bound.budget, cap: bound.cap, parts: parts, units: share,
          asked: Int(claims[children.count + offset].demand))
      }
    }
  }
}

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
