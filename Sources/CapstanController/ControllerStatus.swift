import CapstanCore
import Foundation

/// What `GET /status` answers and `capstan status` shows: per process, where it stands and why,
/// in the spirit of `kubectl describe hpa`.
public struct ControllerStatus: Codable, Sendable, Equatable {
  /// The last tick, RFC 3339; nil before the first.
  public var lastTick: String?
  /// Whether this Capstan acts (true without leader election).
  public var leading: Bool
  /// Why it is not acting, when it is not.
  public var problem: String?
  public var processes: [ProcessStatus]

  enum CodingKeys: String, CodingKey {
    case leading, problem, processes
    case lastTick = "last_tick"
  }
}

public struct ProcessStatus: Codable, Sendable, Equatable {
  public struct Signal: Codable, Sendable, Equatable {
    public var name: String
    /// nil: missing at the last tick.
    public var value: Double?
    /// The tracking target where the process tracks this signal.
    public var target: Double?
  }

  /// What holds the count now: a block still in force, else the last move, else nothing.
  public struct Binding: Codable, Sendable, Equatable {
    /// A reason code, as the audit records write it; `none` when nothing holds the count.
    public var reason: String
    /// The count wanted, where a block holds it from that count.
    public var wanted: Int?
    /// The record that said so, where there is one: its event and detail.
    public var event: String?
    public var detail: String?
  }

  public struct Budget: Codable, Sendable, Equatable {
    public var spentUSD: Double
    public var dailyBudgetUSD: Double
    /// `ok`, `alert` or `frozen`.
    public var state: String

    enum CodingKeys: String, CodingKey {
      case state
      case spentUSD = "spent_usd"
      case dailyBudgetUSD = "daily_budget_usd"
    }
  }

  /// A cooldown or stabilization window still running.
  public struct Hold: Codable, Sendable, Equatable {
    /// `scale_up_cooldown`, `scale_down_cooldown` or `scale_down_window`.
    public var kind: String
    /// RFC 3339.
    public var until: String
    /// The count a stabilization window holds.
    public var replicas: Int?
  }

  /// An SLO objective judged over a period, once its error budget steers.
  public struct ErrorBudget: Codable, Sendable, Equatable {
    public var latency: String
    public var periodSeconds: Double
    /// The share of the period's requests within the bound, 0 to 1.
    public var share: Double
    /// The share of the budget left: below 0, overspent.
    public var left: Double
    /// The percentile the sizing aims at.
    public var aim: Double

    enum CodingKeys: String, CodingKey {
      case latency, share, left, aim
      case periodSeconds = "period_s"
    }

    /// As `capstan status` shows it: `ttft error budget 98% left (99.95% within), sized for p95`.
    public var summary: String {
      let left = Ceilings.format((left * 100).rounded())
      return
        "\(latency) error budget \(left)% left (\(CapstanCore.ErrorBudget.percentText(share)) within), sized for \(CapstanCore.ErrorBudget.aimText(aim))"
    }
  }

  /// As the HPA's: `AbleToScale`, `ScalingActive`, `ScalingLimited`.
  public struct Condition: Codable, Sendable, Equatable {
    public var type: String
    public var status: Bool
    public var reason: String
    public var message: String
  }

  public var name: String
  /// At the last tick; nil before the backend was read.
  public var current: Int?
  public var desired: Int?
  public var ready: Int?
  public var min: Int
  public var max: Int
  public var binding: Binding
  public var signals: [Signal]
  public var budget: Budget?
  public var holds: [Hold]
  /// The predictive floor's state (`active`, `no_history`, `too_short`, `stale`), where the
  /// process has one.
  public var predictive: String?
  /// Per objective with a period whose budget steers; nil where there is none.
  public var errorBudgets: [ErrorBudget]? = nil
  public var conditions: [Condition]

  enum CodingKeys: String, CodingKey {
    case name, current, desired, ready, min, max, binding, signals, budget, holds, predictive, conditions
    case errorBudgets = "error_budgets"
  }
}
