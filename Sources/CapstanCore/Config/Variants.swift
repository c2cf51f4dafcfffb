import Foundation

/// A process served by several kinds of replica (an H100 pool, cheaper L4s, a provider's API):
/// its scaling rules decide how much capacity it needs, and the engine fills that capacity
/// from its variants, cheapest per unit of capacity first (`VariantFill.swift`).
public struct VariantGroup: Sendable, Equatable {
  /// The process as written, without the settings its variants hold: its tracking, rules,
  /// windows, steps and predictive floor decide its capacity. Its `min` and `max` are capacity.
  public var process: ScalingTarget
  /// Its variants' targets by name, in the order they are filled: `prefer:` first, in its
  /// order, then the rest by cost per unit of capacity, cheapest first (file order on a tie).
  /// Removal runs the other way.
  public var fillOrder: [String]
  /// How many of `fillOrder`'s first entries `prefer:` placed.
  public var preferred: Int
  /// Where variants learn their capacity: the target of the variant whose declared capacity
  /// sets the unit the others are learned in (the first in the file); nil where none learns.
  public var unit: String? = nil
}

/// What makes a target one variant of a process.
public struct VariantMembership: Sendable, Equatable {
  /// The process's name.
  public var group: String
  /// The variant's own name, as written under `variants:`.
  public var variant: String
  /// What one replica carries, in units of the process's capacity: a replica at capacity 1
  /// carries the process's `scaling.target`.
  public var capacity: Double
  /// Its own `startup`, where it sets one: a simulated replica of it starts this long, where
  /// the others take the simulation section's.
  public var startup: TimeInterval? = nil
  /// Where its capacity is learned on the process's SLO; `capacity` is then where it starts.
  public var learning: VariantLearning? = nil

  /// Dollars an hour per unit of capacity, which orders the fill; 0 without a cost.
  public func costPerUnit(_ target: ScalingTarget) -> Double { (target.costPerHourUSD ?? 0) / capacity }
}

struct RawVariant: Decodable {
  var description, capacity, costPerHourUSD, min, max, startup: RawScalar?
  var resources: RawResources?
  var rateLimit: RawRateLimitShare?
  var local: RawLocalProcess?
  var kubernetes: RawKubernetesWorkload?
  var learn: RawVariantLearning?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case description, capacity, min, max, startup, resources, local, kubernetes, learn
    case costPerHourUSD = "cost_per_hour_usd", rateLimit = "rate_limit"
  }
}

extension VariantGroup {
  /// The process's capacity as its rules count it (whole units, rounded down), from its
  /// variants' replicas by target name; nil where a variant's are unknown. `learned` gives a
  /// variant's learned capacity where the engine uses one in place of the declared.
  public func capacity(
    of replicas: [String: ReplicaStatus], in policy: Policy, learned: (String) -> Double? = { _ in nil }
  ) -> ReplicaStatus? {
    var statuses: [ReplicaStatus] = []
    var capacities: [Double] = []
    for name in fillOrder {
      guard let status = replicas[name],
        let capacity = learned(name) ?? policy.target(named: name)?.variant?.capacity
      else {
        return nil
      }
      statuses.append(status)
      capacities.append(capacity)
    }
    return VariantFill.capacityStatus(statuses, capacities)
  }

  /// A variant's target name: the process's and the variant's, joined by a dot, which is also
  /// a valid Kubernetes name where both are.
  public static func targetName(process: String, variant: String) -> String { "\(process).\(variant)" }
}

extension PolicyValidator {
  /// Replaces each process with `variants:` in `targets` by one target per variant, in place,
  /// and returns the groups. The process keeps its rules in the group; each variant gets its
  /// cost, capacity, resources, rate-limit share, bounds and workload.
  func expandVariants(
    _ raw: RawPolicyFile, targets: inout [ScalingTarget], providers: [ProviderLimits], pools: [GPUPool],
    references: inout SignalReferences
  ) -> [VariantGroup] {
    var groups: [VariantGroup] = []
    for (name, process) in raw.processes?.entries ?? [] {
      guard let variants = process.variants else {
        if let prefer = process.prefer {
          sink.error(prefer.location, "prefer: orders variants, and process '\(name.text)' has none")
        }
        continue
      }
      guard let index = targets.firstIndex(where: { $0.name == name.text }) else { continue }
      refuseProcessSettings(process, of: name, target: targets[index])
      var group = targets[index]
      group.costPerHourUSD = nil
      group.resources = Resources()
      group.rateLimit = nil
      group.local = nil
      group.kubernetes = nil
      var members: [ScalingTarget] = []
      for (variantName, variant) in variants.entries {
        if let member = validateVariant(
          variantName, variant, of: group, providers: providers, pools: pools, references: &references)
        {
          members.append(member)
        }
      }
      if variants.entries.isEmpty {
        sink.error(name.location, "variants of process '\(name.text)' is empty: name at least one")
      } else if members.count == variants.entries.count {
        checkVariantBounds(members, of: group, scaling: process.scaling, process: name)
      }
      // An SLO sizes the process a startup ahead: the longest any variant may take.
      group.startup = members.compactMap(\.startup).max() ?? group.startup
      let order = fillOrder(members, prefer: process.prefer, process: name.text)
      groups.append(
        VariantGroup(
          process: group, fillOrder: order.names, preferred: order.preferred,
          unit: checkUnitVariant(members, raw: variants, process: name.text)))
      targets.replaceSubrange(index...index, with: members)
    }
    return groups
  }

  /// The process's capacity bounds against what its variants' bounds carry, as declared: mins
  /// that carry more than the process's max, or maxes that carry less than its min, cannot both
  /// hold. Maxes that carry less than the process's max are a scarce pool, and stand.
  private func checkVariantBounds(
    _ members: [ScalingTarget], of group: ScalingTarget, scaling: RawProcessScaling?, process name: RawScalar
  ) {
    // A variant whose own max is below its min is reported at it.
    guard members.allSatisfy({ $0.min <= $0.max }) else { return }
    func carried(_ count: (ScalingTarget) -> Int) -> Double {
      members.reduce(0) { $0 + Double(count($1)) * ($1.variant?.capacity ?? 0) }
    }
    let floor = carried(\.min)
    let ceiling = carried(\.max)
    let slack = 1e-9
    if floor > Double(group.max) + slack {
      sink.error(
        scaling?.max?.location ?? name.location,
        "the variants of '\(name.text)' carry \(format(floor)) units of capacity at their mins, above its max of \(group.max): lower a variant's min, or raise max"
      )
    }
    if ceiling < Double(group.min) - slack {
      sink.error(
        scaling?.min?.location ?? name.location,
        "the variants of '\(name.text)' carry \(format(ceiling)) units of capacity at their maxes, below its min of \(group.min): raise a variant's max, or lower min"
      )
    }
  }

  /// A process with variants holds only what decides its capacity; what a replica is, costs
  /// and runs as belongs to each variant.
  private func refuseProcessSettings(_ raw: RawProcess, of name: RawScalar, target: ScalingTarget) {
    let moved: [(String, FileLocation?)] = [
      ("cost_per_hour_usd", raw.costPerHourUSD?.location),
      ("resources", raw.resources.map { _ in name.location }),
      ("rate_limit", raw.rateLimit.map { _ in name.location }),
      ("local", raw.local.map { _ in name.location }),
      ("kubernetes", raw.kubernetes.map { _ in name.location }),
    ]
    for (key, location) in moved {
      guard let location else { continue }
      sink.error(
        location,
        "process '\(name.text)' has variants, so \(key) belongs to each variant: move it under variants.NAME.\(key)"
      )
    }
    if target.budget != nil {
      sink.error(
        name.location,
        "process '\(name.text)' has variants and a cost_circuit_breaker, which counts one kind of replica: put the process in a budget under budgets: (budget: NAME), which adds up every variant's spend"
      )
    }
    if target.maxCostPerHourUSD != nil {
      sink.error(
        name.location,
        "process '\(name.text)' has variants and a max_cost_per_hour_usd constraint, which prices one kind of replica: bound the variants together with a budget under budgets: (its daily_budget_usd, max_replicas or max_gpus), or each variant with its own max"
      )
    }
  }

  private func validateVariant(
    _ name: RawScalar, _ raw: RawVariant, of group: ScalingTarget, providers: [ProviderLimits],
    pools: [GPUPool], references: inout SignalReferences
  ) -> ScalingTarget? {
    let process = group.name
    guard let rawCapacity = raw.capacity else {
      if raw.learn != nil {
        sink.error(
          name.location,
          "variant '\(name.text)' of process '\(process)' learns its capacity and still needs capacity: the value it starts from, and holds until its replicas and the unit variant's have run long enough to learn from (a variant at 0 replicas has nothing to learn from)"
        )
      } else {
        sink.error(
          name.location,
          "variant '\(name.text)' of process '\(process)' needs capacity: what one replica carries, where a replica at capacity 1 carries the process's scaling.target (sized on an SLO: one unit of its latency model), or a learn: block and capacity to start from"
        )
      }
      return nil
    }
    guard let capacity = positive(rawCapacity, "units of the process's capacity") else { return nil }
    var member = group
    member.name = VariantGroup.targetName(process: process, variant: name.text)
    member.location = name.location
    member.description = raw.description?.text ?? group.description
    member.variant = VariantMembership(group: process, variant: name.text, capacity: capacity)
    member.variant?.learning = raw.learn.flatMap {
      validateLearning($0, variant: name, process: group, member: member.name, references: &references)
    }
    member.tracking = nil
    member.metric = nil
    member.up.rule = nil
    member.down.rule = nil
    member.predictive = nil
    member.slo = nil
    member.budget = nil
    member.simulation = nil
    member.costPerHourUSD = raw.costPerHourUSD.flatMap { nonNegative($0, "USD per hour") }
    member.resources = validateResources(raw.resources, pools: pools)
    member.rateLimit = raw.rateLimit.flatMap {
      validateRateLimit($0, process: member.name, providers: providers)
    }
    member.local = raw.local.flatMap {
      validateLocal($0, process: RawScalar(text: member.name, location: name.location))
    }
    let startup = raw.startup.flatMap { duration($0) }
    member.variant?.startup = startup
    member.startup = startup ?? group.startup
    member.min = raw.min.flatMap { count($0, "replicas") } ?? 0
    // Without its own max, as many as the process's max capacity needs of it alone.
    member.max =
      raw.max.flatMap { count($0, "replicas") }
      ?? Swift.max(1, Int(saturating: (Double(group.max) / capacity - 1e-9).rounded(.up)))
    member.maxSource = .process
    if member.max < member.min, let rawMax = raw.max {
      sink.error(
        rawMax.location, "max (\(member.max)) of variant '\(name.text)' is below its min (\(member.min))")
    } else if member.max < member.min, let rawMin = raw.min {
      sink.error(
        rawMin.location,
        "min (\(member.min)) of variant '\(name.text)' is above the \(member.max) replicas of it the process's max capacity (\(group.max)) needs: lower its min, or raise the process's scaling.max"
      )
    }
    if member.max == 0, let rawMax = raw.max {
      sink.error(rawMax.location, "max of variant '\(name.text)' is 0: leave the variant out instead")
    }
    return member
  }

  private static func costPerUnit(_ target: ScalingTarget) -> Double {
    target.variant?.costPerUnit(target) ?? 0
  }

  /// `prefer:` first, in its order; then the rest by dollars per unit of capacity.
  private func fillOrder(_ members: [ScalingTarget], prefer: RawOneOrList<RawScalar>?, process: String) -> (
    names: [String], preferred: Int
  ) {
    var preferred: [String] = []
    for raw in prefer?.items ?? [] {
      let name = VariantGroup.targetName(process: process, variant: raw.text)
      guard members.contains(where: { $0.name == name }) else {
        let known = members.compactMap { $0.variant?.variant }
        let hint = closestMatch(to: raw.text, in: known).map { "; did you mean '\($0)'?" } ?? ""
        sink.error(
          raw.location, "prefer names '\(raw.text)', which is not a variant of process '\(process)'\(hint)")
        continue
      }
      guard !preferred.contains(name) else {
        sink.error(raw.location, "prefer names '\(raw.text)' twice: name each variant once")
        continue
      }
      preferred.append(name)
    }
    let rest = members.enumerated().filter { !preferred.contains($0.element.name) }.sorted {
      let (a, b) = (Self.costPerUnit($0.element), Self.costPerUnit($1.element))
      return a != b ? a < b : $0.offset < $1.offset
    }
    return (preferred + rest.map(\.element.name), preferred.count)
  }
}
