import ArgumentParser
import CapstanCore
import Foundation

struct Validate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Check policy files and show each process's bounds and the ceiling that binds.",
    discussion: """
      Exits 0 when every file is valid. Otherwise prints every problem found as \
      FILE:LINE:COLUMN: error: MESSAGE on standard error and exits 1.
      """
  )

  @Argument(help: "Policy files to check.", completion: .file(extensions: ["yaml", "yml"]))
  var files: [String]

  func run() throws {
    var failed = false
    for file in files {
      switch PolicySource.load(file) {
      case .success(let loaded):
        loaded.warnings.forEach { printError($0.description) }
        print(ValidateReport.summary(loaded.policy, file: file))
      case .failure(let failure):
        printError(failure.description)
        failed = true
      }
    }
    if failed { throw ExitCode(1) }
  }
}

enum ValidateReport {
  static func summary(_ policy: Policy, file: String) -> String {
    let count = policy.targets.count
    var out = "\(file): valid, \(count) \(count == 1 ? "target" : "targets")\n"
    let width = policy.targets.map(\.name.count).max() ?? 0
    let divided = Set(policy.providersDividedByBudget.map(\.name))
    for target in policy.targets {
      let ceiling = StaticCeiling.binding(for: target, in: policy)
      var line =
        "  \(target.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(target.workloadClass.rawValue), min \(target.min), max \(target.max), ceiling \(ceiling.replicas): \(ceiling.explanation)"
      if let tracking = target.tracking {
        let goal =
          tracking.kind == .utilization
          ? "\(Ceilings.format(tracking.target))%" : "\(Ceilings.format(tracking.target)) per replica"
        line += "; tracks \(tracking.metric) at \(goal)"
      } else if let metric = target.metric {
        line +=
          target.policyName.map { "; \(metric) has no target, so only policy '\($0)' scales it" }
          ?? "; \(metric) has no target and no policy scales it, so it holds within \(target.min)..\(target.max)"
      }
      if let slo = target.slo { line += "; \(slo.summary)" }
      if let variant = target.variant {
        line += "; variant of \(variant.group), carries \(Ceilings.format(variant.capacity)) of its capacity"
        if let learning = variant.learning {
          let signals = learning.signalNames.joined(separator: ", ")
          line +=
            policy.variantGroup(named: variant.group)?.unit == target.name
            ? ", the unit the others learn theirs in, measured by \(signals)"
            : " to start, learned from \(signals)"
        }
      }
      if let budget = target.budget { line += "; budget $\(Ceilings.format(budget.dailyBudgetUSD))/day" }
      if let name = target.budgetName { line += "; \(budgetBinding(name, in: policy.budgets))" }
      if let provider = target.rateLimit?.provider, divided.contains(provider) {
        line += "; provider '\(provider)' is shared with other budgets, divided by rate_limit_weight"
      }
      if let predictive = target.predictive {
        line += "; \(predictive.summary(max: target.max, min: target.min))"
      }
      if let workload = target.kubernetes {
        line += "; scales \(workload)\(workload.namespace.map { " in \($0)" } ?? "")"
      }
      out += line + "\n"
    }
    if !policy.variantGroups.isEmpty {
      out += "variants:\n"
      for group in policy.variantGroups { out += variantLine(group, policy) }
    }
    if !policy.budgets.isEmpty {
      out += "budgets:\n"
      for (position, parent) in policy.budgets.parents.enumerated() where parent == nil {
        out += budgetLines(position, depth: 1, policy)
      }
    }
    return out.trimmingCharacters(in: .newlines)
  }

  /// `inference  capacity 1..24, tracks request_rate at 10 per unit; fills l4 (...), then h100
  /// (...); removes in the reverse order`.
  static func variantLine(_ group: VariantGroup, _ policy: Policy) -> String {
    let process = group.process
    var line = "  \(process.name)  capacity \(process.min)..\(process.max)"
    if let tracking = process.tracking {
      let goal =
        tracking.kind == .utilization
        ? "\(Ceilings.format(tracking.target))%" : "\(Ceilings.format(tracking.target)) per unit of capacity"
      line += ", tracks \(tracking.metric) at \(goal)"
    }
    if let slo = process.slo { line += ", sized on its SLOs per unit of capacity: \(slo.settings)" }
    if let predictive = process.predictive {
      line += "; \(predictive.summary(max: process.max, min: process.min))"
    }
    let steps = group.fillOrder.enumerated().compactMap { position, name -> String? in
      guard let target = policy.target(named: name), let variant = target.variant else { return nil }
      let ceiling = StaticCeiling.binding(for: target, in: policy)
      let why =
        position < group.preferred
        ? "preferred" : "$\(String(format: "%.2f", variant.costPerUnit(target))) an hour a unit"
      return "\(variant.variant) (\(why), \(ceiling.replicas) replicas at most: \(ceiling.explanation))"
    }
    line += "; fills \(steps.joined(separator: ", then ")); removes in the reverse order"
    if let unit = group.unit, let variant = policy.target(named: unit)?.variant {
      let learners = group.fillOrder.compactMap { policy.target(named: $0)?.variant }.filter {
        $0.learning != nil && $0.variant != variant.variant
      }
      line +=
        "; \(learners.map(\.variant).joined(separator: ", ")) learn\(learners.count == 1 ? "s" : "") capacity from \(learners.count == 1 ? "its" : "their") own signals, against \(variant.variant) (capacity \(Ceilings.format(variant.capacity)) sets the unit), from the declared capacity until both are learned; the fill order follows the learned prices"
    }
    return line + "\n"
  }

  /// `in budget acme, under org: freezes with acme's day or org's; capped by acme's 12 replicas`.
  static func budgetBinding(_ name: String, in tree: BudgetTree) -> String {
    let chain = tree.chain(from: name).map { tree.budgets[$0] }
    var text = "in budget \(name)"
    if chain.count > 1 { text += ", under " + chain.dropFirst().map(\.name).joined(separator: ", under ") }
    let days = chain.filter { $0.dailyBudgetUSD != nil }.map { "\($0.name)'s" }
    if !days.isEmpty { text += ": freezes with " + days.joined(separator: " or ") + " day" }
    let caps = chain.flatMap { budget in
      [
        budget.maxReplicas.map { "\(budget.name)'s \($0) replicas" },
        budget.maxGPUs.map { "\(budget.name)'s \($0) GPUs" },
      ].compactMap { $0 }
    }
    if !caps.isEmpty { text += (days.isEmpty ? ": " : "; ") + "shares " + caps.joined(separator: ", ") }
    return text
  }

  /// A budget, what it sets and its processes, then the budgets below it, indented.
  static func budgetLines(_ position: Int, depth: Int, _ policy: Policy) -> String {
    let budget = policy.budgets.budgets[position]
    var parts: [String] = []
    if let day = budget.dailyBudgetUSD {
      parts.append(
        "$\(Ceilings.format(day))/day (\(budget.timeZone.identifier)), freezes at \(Ceilings.format(budget.actionThreshold * 100))%"
      )
    }
    if let replicas = budget.maxReplicas { parts.append("max \(replicas) replicas") }
    if let gpus = budget.maxGPUs { parts.append("max \(gpus) GPUs") }
    if budget.parent != nil { parts.append("weight \(Ceilings.format(budget.weight))") }
    if budget.rateLimitWeight != 1 {
      parts.append("rate_limit_weight \(Ceilings.format(budget.rateLimitWeight))")
    }
    let processes = policy.targets.filter { $0.budgetName == budget.name }.map(\.name)
    if !processes.isEmpty { parts.append("processes " + processes.joined(separator: ", ")) }
    var out =
      String(repeating: "  ", count: depth) + budget.name
      + (parts.isEmpty ? "" : ": " + parts.joined(separator: "; ")) + "\n"
    for (child, parent) in policy.budgets.parents.enumerated() where parent == position {
      out += budgetLines(child, depth: depth + 1, policy)
    }
    return out
  }
}

/// Reading a policy file from disk: the one place the CLI turns a path into a `Policy`.
enum PolicySource {
  enum Failure: Error, CustomStringConvertible {
    case unreadable(String, String)
    case invalid(PolicyLoadError)

    var description: String {
      switch self {
      case .unreadable(let file, let reason): return "\(file): error: cannot read the policy file: \(reason)"
      case .invalid(let error): return error.description
      }
    }
  }

  /// For commands that need a valid policy: prints its warnings, or its errors and exits 1.
  static func loadOrExit(_ file: String) throws -> LoadedPolicy {
    switch load(file) {
    case .success(let loaded):
      loaded.warnings.forEach { printError($0.description) }
      return loaded
    case .failure(let failure):
      printError(failure.description)
      throw ExitCode(1)
    }
  }

  static func load(_ file: String) -> Result<LoadedPolicy, Failure> {
    guard let data = FileManager.default.contents(atPath: file) else {
      let reason =
        FileManager.default.fileExists(atPath: file) ? "permission denied or not a file" : "no such file"
      return .failure(.unreadable(file, reason))
    }
    do {
      return .success(try PolicyLoader.load(data: data, file: file))
    } catch {
      return .failure(.invalid(error))
    }
  }
}
