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
      if let budget = target.budget { line += "; budget $\(Ceilings.format(budget.dailyBudgetUSD))/day" }
      if let predictive = target.predictive {
        line += "; \(predictive.summary(max: target.max, min: target.min))"
      }
      if let workload = target.kubernetes {
        line += "; scales \(workload)\(workload.namespace.map { " in \($0)" } ?? "")"
      }
      out += line + "\n"
    }
    return out.trimmingCharacters(in: .newlines)
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
