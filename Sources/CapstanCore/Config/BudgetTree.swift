import Foundation

/// A budget of the policy's `budgets:` section: an organisation, a tenant, a team. Its day's
/// spend is everything its processes and the budgets below it spend; its caps bound the sum of
/// their replicas and GPUs.
public struct NamedBudget: Sendable, Equatable {
  public var name: String
  public var parent: String?
  /// The day's limit; nil for a budget that only caps replicas or GPUs.
  public var dailyBudgetUSD: Double?
  /// Scale-ups of every process below freeze at this share. Default 0.95, as a process's own
  /// `cost_circuit_breaker`.
  public var actionThreshold: Double
  /// The budget day starts at 00:00 here: its own, else its parent's, else UTC.
  public var timeZone: TimeZone
  /// A metric in USD per hour (LLM spend) counted to this budget, beside its processes' cost.
  public var costRateMetric: String?
  /// The most replicas its processes may run together.
  public var maxReplicas: Int?
  /// The most GPUs its processes may hold together.
  public var maxGPUs: Int?
  /// Its share, beside its siblings', of a parent's cap that cannot give every one what it
  /// asks: `weight`, else its `daily_budget_usd`, else 1.
  public var weight: Double
  /// Its share, beside its siblings', of a provider's rate limit that processes of several
  /// budgets share and that cannot give every one what it asks: `rate_limit_weight`, else 1,
  /// as a process in no budget weighs beside them.
  public var rateLimitWeight: Double
  /// Days of `STATE_DIR/budgets/NAME/` files kept. Default 30.
  public var keepDays: Int
  public var location: FileLocation?
}

/// The `budgets:` tree, parents before their children, and which budgets each process is in.
public struct BudgetTree: Sendable, Equatable {
  /// Every budget, each after its parent.
  public private(set) var budgets: [NamedBudget] = []
  /// Each budget's parent, by position in `budgets`.
  public private(set) var parents: [Int?] = []
  private var positions: [String: Int] = [:]

  public init() {}

  /// - Precondition: `budgets` holds no cycle and every parent it names (validation's work).
  public init(_ budgets: [NamedBudget]) {
    var ordered: [NamedBudget] = []
    var placed = Set<String>()
    var left = budgets
    // Parents first: each pass places the budgets whose parent is placed; a pass that places
    // none would mean a cycle, which validation refuses before this.
    while !left.isEmpty {
      let ready = left.filter { $0.parent.map(placed.contains) ?? true }
      guard !ready.isEmpty else { break }
      for budget in ready {
        ordered.append(budget)
        placed.insert(budget.name)
      }
      left.removeAll { placed.contains($0.name) }
    }
    self.budgets = ordered
    positions = Dictionary(ordered.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    parents = ordered.map { $0.parent.flatMap { positions[$0] } }
  }

  public var isEmpty: Bool { budgets.isEmpty }

  public func budget(named name: String) -> NamedBudget? { positions[name].map { budgets[$0] } }

  /// The budget `name` and each above it, nearest first.
  public func chain(from name: String?) -> [Int] {
    var chain: [Int] = []
    var next = name.flatMap { positions[$0] }
    while let position = next, chain.count <= budgets.count {
      chain.append(position)
      next = parents[position]
    }
    return chain
  }

  /// Whether any budget caps replicas or GPUs, which makes a tick divide them.
  public var hasCaps: Bool { budgets.contains { $0.maxReplicas != nil || $0.maxGPUs != nil } }
}

extension Policy {
  /// The providers that processes of more than one budget share (or of a budget and of none):
  /// a tick divides their limits by the budgets' `rate_limit_weight`.
  public var providersDividedByBudget: [ProviderLimits] {
    guard !budgets.isEmpty else { return [] }
    return providers.filter { provider in
      Set(targets.filter { $0.rateLimit?.provider == provider.name }.map { $0.budgetName ?? "" }).count > 1
    }
  }
}
