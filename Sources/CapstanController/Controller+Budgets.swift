import CapstanCore
import CapstanRuntime
import Foundation

/// The budgets of `budgets:` after each tick: their gauges, and their days' files in
/// `STATE_DIR/budgets/`.
extension Controller {
  func exportBudgetTree() {
    let tree = policy.budgets
    guard !tree.isEmpty else { return }
    for budget in tree.budgets {
      guard let ledger = state.engine.budgetTree[budget.name] else { continue }
      metrics.namedBudget(
        budget.name, spent: ledger.day?.spentUSD ?? 0, health: ledger.health, frozen: ledger.frozen)
    }
    do {
      try budgetFiles.write(BudgetDayReport.all(tree, state.engine), tree: tree)
    } catch {
      logger.error(
        "cannot write a budget's day file",
        metadata: ["directory": "\(budgetFiles.directory.path)", "error": "\(error)"])
    }
  }
}
