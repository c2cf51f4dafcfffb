import Foundation

/// One replica count some part of the policy asks for, and why.
struct Proposal {
  var replicas: Int
  var reason: ScaleReason
  /// Why, as numbers: the sentence is written only when a record needs it, because a tick that
  /// changes nothing should cost no formatting.
  var basis: Basis
  /// Whether the activation threshold raised a count below 1 to 1, for a process that may
  /// reach 0.
  var raisedToOne = false
  /// A hold because replicas are still starting: what counting only the ready ones would give.
  var readyOnly: Int? = nil

  /// Small on purpose: the tracking and the rules are the target's, and the current and ready
  /// counts the context's, read back when a record is written, so a proposal copies as a few
  /// numbers (and two of them, with a flag, fit the 128 bytes a copy moves without `memmove`).
  enum Basis {
    case trackingMissing
    case belowActivation(value: Double)
    case averageWithin(value: Double)
    case averageDesired(value: Double, desired: Int)
    case noReadyReplica(value: Double)
    case utilizationWithin(value: Double)
    case utilizationDesired(value: Double, desired: Int)
    /// Replicas still starting: what the ready ones show, and the mean once those count.
    case utilizationStarting(value: Double, adjusted: Double, desired: Int?)
    case scaleUpRuleFires(step: Int)
    case scaleDownRuleFires(step: Int)
    case scaleDownRuleMissing
    case scaleDownRuleNotMet
    /// Sized from the SLOs: by the models, or by the band rule while they are not ready.
    indirect case slo(SLOSizing)
    /// The SLO sizing cannot run: the named signal is missing.
    case sloMissing(signal: String)
  }
}

/// One clamp that lowered (or raised) the count on the way from wanted to decided.
struct Clamp {
  var reason: ScaleReason
  var before: Int
  var after: Int
  var basis: Basis
  /// Replicas still draining held growth further, at this count (after a min or restore floor).
  var heldForDraining: Int? = nil

  enum Basis {
    case bound(ScaleReason)
    case stabilization(up: Bool, window: TimeInterval, holding: Int)
    case step(ScaleDirection, step: Int, relative: Bool, fixed: Int?, percent: Double?)
    case cooldown(ScaleDirection, cooldown: TimeInterval, left: TimeInterval)
    /// The ceiling named by the clamp's reason, worked out again from the same numbers when a
    /// record describes it: a clamp of plain numbers is dropped and copied as plain memory.
    case ceiling(draining: Int)
    case budgetFrozen(spent: Double, limit: Double)
    case restore(Int)
    case draining(Int)
    /// The tick's predictive floor, kept by the context.
    case predictive
    /// The target's share of its budgets' cap, and the frozen budget above it, kept by the
    /// context (`TreeBinding`).
    case budgetShare
    /// The target's share of a provider's limit divided by `rate_limit_weight`, kept by the
    /// context (`TreeBinding`).
    case providerShare
    case frozenAbove
  }
}

/// The clamps of one decision in the order they applied.
///
/// Inline head: the first two clamps are held in the value itself and the rest in an array, so
/// the usual decision (no clamp, or one or two) allocates nothing; the steady-tick benchmark's
/// malloc count guards it. A clamp is plain numbers, so the empty places cost nothing to set up.
struct ClampTrail {
  private var head: (Clamp?, Clamp?) = (nil, nil)
  private var rest: [Clamp] = []
  private var count = 0

  private func clamp(at index: Int) -> Clamp? {
    switch index {
    case 0: head.0
    case 1: head.1
    default: rest[index - 2]
    }
  }

  mutating func append(_ clamp: Clamp) {
    switch count {
    case 0: head.0 = clamp
    case 1: head.1 = clamp
    default: rest.append(clamp)
    }
    count += 1
  }

  /// Records a clamp from `from` to `to` (none when they are equal) and returns the new count.
  mutating func record(_ reason: ScaleReason, from: Int, to: Int, _ basis: Clamp.Basis) -> Int {
    if to != from { append(Clamp(reason: reason, before: from, after: to, basis: basis)) }
    return to
  }

  var first: Clamp? { head.0 }
  var last: Clamp? { count == 0 ? nil : clamp(at: count - 1) }

  func last(where matches: (Clamp) -> Bool) -> Clamp? {
    var index = count - 1
    while index >= 0 {
      if let clamp = clamp(at: index), matches(clamp) { return clamp }
      index -= 1
    }
    return nil
  }
}
