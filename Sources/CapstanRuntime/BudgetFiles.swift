import CapstanCore
import Foundation

/// Each `budgets:` budget's day in `STATE_DIR/budgets/NAME/YYYY-MM-DD.json`: written atomically
/// (a temporary file renamed over the old) when it changed, and files older than the budget's
/// `keep_days` removed.
public final class BudgetFiles: @unchecked Sendable {
  public let directory: URL
  private let lock = NSLock()
  /// What each path last held, so an unchanged day is not written again.
  private var written: [String: Data] = [:]

  public init(directory: URL) { self.directory = directory }

  /// Writes what changed; the first failure is thrown after the others are tried.
  public func write(_ reports: [BudgetDayReport], tree: BudgetTree) throws {
    var failure: (any Error)?
    for report in reports {
      let folder = directory.appendingPathComponent(report.budget)
      let url = folder.appendingPathComponent("\(report.date).json")
      let data = report.json()
      guard lock.withLock({ written[url.path] }) != data else { continue }
      do {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try AtomicFile.replace(url, with: data, durable: false)
        lock.withLock { written[url.path] = data }
        if let budget = tree.budget(named: report.budget) {
          try prune(folder, budget: budget, today: report.date)
        }
      } catch {
        failure = failure ?? error
      }
    }
    if let failure { throw failure }
  }

  /// Removes the days more than `keep_days` before `today`. Names sort as dates do.
  private func prune(_ folder: URL, budget: NamedBudget, today: String) throws {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = budget.timeZone
    let parts = today.split(separator: "-").compactMap { Int($0) }
    guard parts.count == 3,
      let noon = calendar.date(
        from: DateComponents(year: parts[0], month: parts[1], day: parts[2], hour: 12)),
      let oldest = calendar.date(byAdding: .day, value: -(budget.keepDays - 1), to: noon)
    else { return }
    let cutoff = BudgetDayReport.date(of: oldest, in: budget.timeZone)
    for name in try FileManager.default.contentsOfDirectory(atPath: folder.path)
    where name.hasSuffix(".json") && name.count == 15 && String(name.prefix(10)) < cutoff {
      try FileManager.default.removeItem(at: folder.appendingPathComponent(name))
      lock.withLock { _ = written.removeValue(forKey: folder.appendingPathComponent(name).path) }
    }
  }
}
