import CapstanCore
import Foundation
import Metrics

/// The metrics the controller exports, made from a factory it is given rather than a global.
public struct ControllerMetrics: Sendable {
  let factory: any MetricsFactory

  public init(factory: any MetricsFactory) { self.factory = factory }

  /// Up to this many processes, each process's counters are exported at 0 from the start; a
  /// larger fleet makes each when it first counts. Every series costs the controller about a
  /// kilobyte, and ten thousand processes' counters at 0 (ten a process) would be a hundred
  /// megabytes of series that never count.
  public static let processCountersAtZero = 1_000

  /// Exports every series the policy can produce at 0 (its gauges at their resting value), so
  /// the first scrape has them all and `rate()` has a start: Prometheus' practice for label
  /// values known ahead. Made again on a reload, for the processes and signals it adds. A
  /// budget's gauges start from its saved ledger.
  /// - Parameter crashLoops: whether the backend counts crash-looping replicas.
  func prepare(
    _ policy: Policy, budgets: ProcessTable<BudgetLedger>, namedBudgets: [String: BudgetDayLedger],
    crashLoops: Bool
  ) {
    Counter(label: "capstan_tick_overruns_total", dimensions: [], factory: factory).increment(by: 0)
    var declared = Set<String>()
    for signal in policy.signals where declared.insert(signal.declaredName).inserted {
      Counter(
        label: "capstan_signal_errors_total", dimensions: [("signal", signal.declaredName)], factory: factory
      )
      .increment(by: 0)
    }
    for target in policy.targets {
      if crashLoops { crashLooping(target.name, replicas: 0) }
      if target.budget != nil {
        let ledger = budgets[target.name]
        budget(
          target.policyName ?? target.name, spent: ledger?.spentUSD ?? 0, frozen: ledger?.state == .frozen)
      }
    }
    for budget in policy.budgets.budgets {
      let ledger = namedBudgets[budget.name]
      namedBudget(
        budget.name, spent: ledger?.day?.spentUSD ?? 0, health: ledger?.health ?? .healthy,
        frozen: ledger?.frozen ?? false)
    }
    for target in policy.targets where policy.targets.count <= Self.processCountersAtZero {
      for direction in ["up", "down"] {
        Counter(
          label: "capstan_scale_actions_total",
          dimensions: [("process", target.name), ("direction", direction)],
          factory: factory
        ).increment(by: 0)
      }
      for reason in target.blockingReasons {
        Counter(
          label: "capstan_blocked_total",
          dimensions: [("process", target.name), ("reason", reason.rawValue)],
          factory: factory
        ).increment(by: 0)
        held(target.name, by: reason, on: false)
      }
      Counter(label: "capstan_backend_errors_total", dimensions: [("process", target.name)], factory: factory)
        .increment(by: 0)
    }
  }

  func replicas(_ process: String, desired: Int, current: Int, ready: Int) {
    for (state, value) in [("desired", desired), ("current", current), ("ready", ready)] {
      Gauge(
        label: "capstan_replicas", dimensions: [("process", process), ("state", state)], factory: factory
      )
      .record(value)
    }
  }

  /// A process with variants: its capacity, in units, as its rules count it.
  func capacity(_ process: String, desired: Int, current: Int, ready: Int) {
    for (state, value) in [("desired", desired), ("current", current), ("ready", ready)] {
      Gauge(
        label: "capstan_capacity", dimensions: [("process", process), ("state", state)], factory: factory
      )
      .record(value)
    }
  }

  /// A variant: what one of its replicas carries, in units of its process's capacity, as the
  /// engine uses it (learned, or declared).
  func variantCapacity(_ variant: String, _ capacity: Double) {
    Gauge(label: "capstan_variant_capacity", dimensions: [("process", variant)], factory: factory)
      .record(capacity)
  }

  /// An SLO objective judged over a period: the share of its requests within the bound, the
  /// share of its error budget left (below 0: overspent), and the percentile the tick sizes for.
  func errorBudget(_ process: String, latency: String, _ budget: ErrorBudget.Standing) {
    for (label, value) in [
      ("capstan_slo_period_share", budget.share), ("capstan_slo_budget_left", budget.left),
      ("capstan_slo_aim_percentile", budget.aim),
    ] {
      Gauge(label: label, dimensions: [("process", process), ("latency", latency)], factory: factory)
        .record(value)
    }
  }

  func signal(_ name: String, value: Double) {
    Gauge(label: "capstan_signal_value", dimensions: [("signal", name)], factory: factory).record(value)
  }

  func signalError(_ name: String) {
    Counter(label: "capstan_signal_errors_total", dimensions: [("signal", name)], factory: factory)
      .increment()
  }

  func action(_ action: ScaleAction) {
    Counter(
      label: "capstan_scale_actions_total",
      dimensions: [("process", action.process), ("direction", action.to > action.from ? "up" : "down")],
      factory: factory
    ).increment()
  }

  func blocked(_ process: String, reason: ScaleReason) {
    Counter(
      label: "capstan_blocked_total", dimensions: [("process", process), ("reason", reason.rawValue)],
      factory: factory
    ).increment()
  }

  /// 1 while the process's latest tick was held by `reason`, 0 once it is not: a block is
  /// written to the audit log once, so an alert on a hold that lasts reads this, not the
  /// records' rate.
  func held(_ process: String, by reason: ScaleReason, on: Bool) {
    Gauge(
      label: "capstan_held", dimensions: [("process", process), ("reason", reason.rawValue)], factory: factory
    )
    .record(on ? 1 : 0)
  }

  /// Moves the process's hold from `was` to `now`.
  func held(_ process: String, was: ScaleReason?, now: ScaleReason?) {
    guard was != now else { return }
    if let was { held(process, by: was, on: false) }
    if let now { held(process, by: now, on: true) }
  }

  func budget(_ policy: String, spent: Double, frozen: Bool) {
    Gauge(label: "capstan_budget_spent_usd", dimensions: [("policy", policy)], factory: factory).record(spent)
    Gauge(label: "capstan_budget_frozen", dimensions: [("policy", policy)], factory: factory).record(
      frozen ? 1 : 0)
  }

  /// A `budgets:` budget's day: its spend, its freeze, and 1 on the state it is in (0 on the
  /// other three), so an alert is `capstan_named_budget_state{state="critical"} == 1`.
  func namedBudget(_ name: String, spent: Double, health: BudgetHealth, frozen: Bool) {
    Gauge(label: "capstan_named_budget_spent_usd", dimensions: [("budget", name)], factory: factory).record(
      spent)
    Gauge(label: "capstan_named_budget_frozen", dimensions: [("budget", name)], factory: factory).record(
      frozen ? 1 : 0)
    for state in BudgetHealth.allCases {
      Gauge(
        label: "capstan_named_budget_state", dimensions: [("budget", name), ("state", state.rawValue)],
        factory: factory
      ).record(state == health ? 1 : 0)
    }
  }

  func crashLooping(_ process: String, replicas: Int) {
    Gauge(label: "capstan_crash_looping_replicas", dimensions: [("process", process)], factory: factory)
      .record(replicas)
  }

  func backendError(_ process: String) {
    Counter(label: "capstan_backend_errors_total", dimensions: [("process", process)], factory: factory)
      .increment()
  }

  /// 1 while this Capstan leads (or runs without leader election), 0 while it follows.
  func leader(_ leading: Bool) {
    Gauge(label: "capstan_leader", dimensions: [], factory: factory).record(leading ? 1 : 0)
  }

  func tickOverrun() {
    Counter(label: "capstan_tick_overruns_total", dimensions: [], factory: factory).increment()
  }

  func tick(seconds: TimeInterval) {
    Timer(label: "capstan_tick_duration_seconds", dimensions: [], factory: factory)
      .recordNanoseconds(Int64(seconds * 1e9))
  }
}
