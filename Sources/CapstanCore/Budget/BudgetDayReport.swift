import Foundation

/// A `budgets:` budget's day as its file `budgets/NAME/YYYY-MM-DD.json` holds it: what it
/// spent, by process and by hour, against its limit. The same bytes for the same day, wherever
/// the engine ran (`capstan run`, `replay`).
public struct BudgetDayReport: Sendable, Equatable, Encodable {
  public var budget: String
  public var parent: String?
  /// The day's date in the budget's time zone, `YYYY-MM-DD`: the file's name.
  public var date: String
  public var timeZone: String
  public var start: String
  public var end: String
  public var limitUSD: Double?
  public var spentUSD: Double
  public var health: BudgetHealth
  public var frozen: Bool
  public var byProcess: [String: Double]
  public var byHour: [Hour]

  public struct Hour: Sendable, Equatable, Encodable {
    public var start: String
    public var usd: Double
  }

  enum CodingKeys: String, CodingKey {
    case budget, parent, date, start, end, health, frozen
    case timeZone = "timezone", limitUSD = "limit_usd", spentUSD = "spent_usd"
    case byProcess = "by_process", byHour = "by_hour"
  }

  /// - Parameter closed: whether the day has ended (its health and freeze are then as it
  ///   ended, worked out from its spend).
  public init(_ budget: NamedBudget, day: BudgetDay, ledger: BudgetDayLedger, closed: Bool) {
    self.budget = budget.name
    parent = budget.parent
    date = Self.date(of: day.start, in: budget.timeZone)
    timeZone = budget.timeZone.identifier
    start = RFC3339.string(from: day.start)
    end = RFC3339.string(from: day.end)
    limitUSD = budget.dailyBudgetUSD
    spentUSD = AuditRecord.fourDecimals(day.spentUSD)
    health = closed ? BudgetHealth.of(spent: day.spentUSD, limit: budget.dailyBudgetUSD) : ledger.health
    frozen =
      closed
      ? budget.dailyBudgetUSD.map { day.spentUSD >= budget.actionThreshold * $0 } ?? false : ledger.frozen
    byProcess = day.byProcess.mapValues(AuditRecord.fourDecimals)
    byHour = day.byHour.enumerated().map { hour, usd in
      Hour(
        start: RFC3339.string(from: day.start.addingTimeInterval(Double(hour) * 3600)),
        usd: AuditRecord.fourDecimals(usd))
    }
  }

  /// The day's file: JSON with sorted keys and a final newline.
  public func json() -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    var data = (try? encoder.encode(self)) ?? Data()
    data.append(0x0A)
    return data
  }

  /// `YYYY-MM-DD` of `date` in `timeZone`.
  public static func date(of date: Date, in timeZone: TimeZone) -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = timeZone
    let parts = calendar.dateComponents([.year, .month, .day], from: date)
    return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
  }

  /// Every file a state holds for its budgets: each one's day, and the day that ended last.
  public static func all(_ tree: BudgetTree, _ state: EngineState) -> [BudgetDayReport] {
    tree.budgets.flatMap { budget -> [BudgetDayReport] in
      guard let ledger = state.budgetTree[budget.name] else { return [] }
      return [ledger.previousDay.map { BudgetDayReport(budget, day: $0, ledger: ledger, closed: true) }]
        .compactMap { $0 }
        + [ledger.day.map { BudgetDayReport(budget, day: $0, ledger: ledger, closed: false) }].compactMap {
          $0
        }
    }
  }
}
