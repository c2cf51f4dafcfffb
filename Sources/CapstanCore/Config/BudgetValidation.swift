import Foundation

// The `budgets:` section and each process's `budget:`.
extension PolicyValidator {
  /// The tree, with every problem reported at its line: an unknown parent, a cycle of parents,
  /// a child whose day is larger than its parent's (a warning).
  func validateBudgets(_ raw: RawMap<RawBudget>?, references: inout SignalReferences) -> BudgetTree {
    guard let raw else { return BudgetTree() }
    let names = raw.entries.map(\.name.text)
    var budgets: [NamedBudget] = []
    var zones: [String: RawScalar] = [:]
    for (name, entry) in raw.entries {
      var budget = NamedBudget(
        name: name.text, parent: nil, dailyBudgetUSD: nil, actionThreshold: PolicyDefaults.actionThreshold,
        timeZone: .gmt, costRateMetric: nil,
        maxReplicas: nil, maxGPUs: nil, weight: 1, rateLimitWeight: 1, keepDays: 30, location: name.location)
      if let parent = entry.parent {
        if parent.text == name.text {
          sink.error(
            parent.location, "budget '\(name.text)' names itself as its parent: name another budget, or none")
        } else if names.contains(parent.text) {
          budget.parent = parent.text
        } else {
          let hint = closestMatch(to: parent.text, in: names).map { "; did you mean '\($0)'?" } ?? ""
          sink.error(parent.location, "parent '\(parent.text)' is not a budget under budgets\(hint)")
        }
      }
      budget.dailyBudgetUSD = entry.dailyBudgetUSD.flatMap { positive($0, "USD") }
      budget.actionThreshold =
        entry.actionThreshold.flatMap { fraction($0, "action_threshold") } ?? budget.actionThreshold
      if let zone = entry.timezone {
        zones[name.text] = zone
        budget.timeZone = timeZone(zone) ?? .gmt
      }
      if let metric = entry.costRateMetric {
        references.note(metric, perReplicaOf: nil, usedBy: name.text)
        budget.costRateMetric = metric.text
      }
      budget.maxReplicas = entry.maxReplicas.flatMap { count($0, "replicas") }
      budget.maxGPUs = entry.maxGPUs.flatMap { count($0, "GPUs") }
      budget.weight =
        entry.weight.flatMap { positive($0, "a share beside its siblings") } ?? budget.dailyBudgetUSD ?? 1
      budget.rateLimitWeight =
        entry.rateLimitWeight.flatMap { positive($0, "a share of a provider beside its siblings") } ?? 1
      if let keep = entry.keepDays, let days = count(keep, "days") {
        if days < 1 {
          sink.error(keep.location, "keep_days is \(keep.text): keep at least 1 day of budget files")
        } else {
          budget.keepDays = days
        }
      }
      if entry.dailyBudgetUSD == nil, entry.maxReplicas == nil, entry.maxGPUs == nil,
        entry.rateLimitWeight == nil,
        !raw.entries.contains(where: { $0.value.parent?.text == name.text })
      {
        sink.warning(
          name.location,
          "budget '\(name.text)' has no daily_budget_usd, max_replicas, max_gpus or rate_limit_weight and no budget below it: it limits nothing"
        )
      }
      budgets.append(budget)
    }
    // Budgets in a cycle are left out of the tree, reported once here.
    reportCycles(budgets, raw)
    var tree = BudgetTree(budgets)
    // A budget with no time zone of its own keeps its parent's day, so a tenant's day and its
    // organisation's end together.
    tree = BudgetTree(
      tree.budgets.reduce(into: [NamedBudget]()) { resolved, budget in
        var budget = budget
        if zones[budget.name] == nil, let parent = budget.parent,
          let zone = resolved.first(where: { $0.name == parent })?.timeZone
        {
          budget.timeZone = zone
        }
        resolved.append(budget)
      })
    for budget in tree.budgets {
      guard let day = budget.dailyBudgetUSD, let parent = budget.parent.flatMap(tree.budget(named:)),
        let parentDay = parent.dailyBudgetUSD, day > parentDay
      else { continue }
      sink.warning(
        budget.location ?? FileLocation(file: file, line: 1, column: 1),
        "budget '\(budget.name)' has a day of \(usd(day)), more than its parent '\(parent.name)' has (\(usd(parentDay))): the parent's freeze binds first"
      )
    }
    return tree
  }

  /// Reports each cycle of parents once, at the first of its budgets in the file.
  private func reportCycles(_ budgets: [NamedBudget], _ raw: RawMap<RawBudget>) {
    let parents = Dictionary(budgets.map { ($0.name, $0.parent) }, uniquingKeysWith: { a, _ in a })
    var reported = Set<String>()
    for (name, entry) in raw.entries where !reported.contains(name.text) {
      var path = [name.text]
      var next = parents[name.text] ?? nil
      while let current = next, path.count <= budgets.count {
        if current == name.text {
          reported.formUnion(path)
          sink.error(
            entry.parent?.location ?? name.location,
            "budgets form a cycle: \((path + [name.text]).joined(separator: " -> ")); one of them must have no parent"
          )
          break
        }
        path.append(current)
        next = parents[current] ?? nil
      }
    }
  }

  /// A process's `budget:`, which must name a budget under `budgets:`.
  /// A budget declared but left out of the tree (in a cycle) was reported where it is declared.
  func validateBudgetName(_ raw: RawBudgetName?, process: String, declared: [String], tree: BudgetTree)
    -> String?
  {
    guard let name = raw?.name else { return nil }
    guard tree.budget(named: name.text) != nil else {
      if declared.contains(name.text) { return nil }
      let hint = closestMatch(to: name.text, in: declared).map { "; did you mean '\($0)'?" } ?? ""
      sink.error(
        name.location, "process '\(process)' names budget '\(name.text)', which is not under budgets\(hint)")
      return nil
    }
    return name.text
  }

  /// A day's limit over nothing that costs money, or a GPU cap over processes that take no
  /// GPUs, is a mistake a user wants to hear of.
  func checkBudgetsCount(_ tree: BudgetTree, targets: [ScalingTarget]) {
    for (position, budget) in tree.budgets.enumerated() {
      let below = tree.budgets.indices.filter { tree.chain(from: tree.budgets[$0].name).contains(position) }
      let processes = targets.filter { target in
        target.budgetName.map { tree.chain(from: $0).contains(position) } ?? false
      }
      let location = budget.location ?? FileLocation(file: file, line: 1, column: 1)
      if let day = budget.dailyBudgetUSD,
        !processes.contains(where: { $0.costPerHourUSD != nil || $0.budget?.costRateMetric != nil }),
        !below.contains(where: { tree.budgets[$0].costRateMetric != nil })
      {
        sink.warning(
          location,
          "budget '\(budget.name)' has a day of \(usd(day)) but nothing in it costs money: set cost_per_hour_usd on its processes or cost_rate_metric on it"
        )
      }
      if budget.maxGPUs != nil, !processes.contains(where: { $0.resources.gpus > 0 }) {
        sink.warning(
          location, "budget '\(budget.name)' caps GPUs, but none of its processes takes a GPU (resources.gpu)"
        )
      }
    }
  }
}
