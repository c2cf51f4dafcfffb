import Foundation

/// Step 2 for a process scaled on its SLOs: learn from this tick's samples, then size.
extension TargetContext {
  /// - Parameter missing: set when a signal the sizing reads is missing, which vetoes any
  ///   scale-down.
  func sloProposal(
    _ slo: SLOScaling, at positions: SLOPositions, _ state: inout TargetState, missing: inout Bool
  )
    -> Proposal
  {
    func value(_ position: Int?) -> Double? { position.flatMap { signals[$0] } }
    let observation = SLOObservation(
      load: value(positions.load), running: value(positions.running), waiting: value(positions.waiting),
      measured: positions.measured.map(value), within: positions.within.map(value), status: status, now: now,
      tick: prepared.tick, capacity: capacity)
    var learned = state.slo ?? SLOState()
    SLOSizer.learn(observation, slo, state: &learned)
    state.slo = learned
    if observation.load == nil || observation.running == nil
      || (slo.waiting != nil && observation.waiting == nil)
      || (!observation.idle && observation.measured.contains(where: { $0 == nil }))
    {
      missing = true
    }
    guard observation.load != nil else {
      return Proposal(replicas: current, reason: .signalMissing, basis: .sloMissing(signal: slo.load))
    }
    let sizing = SLOSizer.size(
      observation, slo, state: learned, ahead: target.startup ?? 0, seasonal: seasonal, max: target.max)
    return Proposal(
      replicas: sizing.replicas, reason: sizing.mode == .model ? .slo : .modelNotReady, basis: .slo(sizing))
  }

  /// One sentence a person can check: the objectives, the models, the capacity and the
  /// arithmetic; or, before the models are ready, the band rule and why.
  func describe(_ sizing: SLOSizing) -> String {
    let objectives = sizing.objectives.map { objective in
      let measured = objective.measured.map(milliseconds) ?? "missing"
      var text =
        "\(objective.latency.rawValue) p\(format(objective.percentile)) \(measured) (bound \(milliseconds(objective.bound))"
      if let budget = objective.budget {
        text +=
          "; \(ErrorBudget.percentText(budget.share)) within it over the last \(SLOSizer.hours(budget.counted)), \(format((budget.left * 100).rounded()))% of the error budget left"
        if sizing.mode == .model { text += ", so sized for \(ErrorBudget.aimText(budget.aim))" }
      }
      return text + ")"
    }
    .joined(separator: ", ")
    guard sizing.mode == .model, let capacity = sizing.capacity, let duration = sizing.duration else {
      var text = "\(objectives); model not ready (\(sizing.notReady ?? "")), so the band rule: "
      if current == 0 && sizing.replicas > 0 {
        text += "load arrives with no replica running, so 1"
      } else if sizing.replicas > current {
        text += "above a bound, add 1 → \(sizing.replicas)"
      } else if sizing.replicas < current {
        text +=
          "every latency under \(format(SLOSizer.bandLow * 100))% of its bound and none waiting, remove 1 → \(sizing.replicas)"
      } else {
        text += "hold at \(current)"
        if let held = sizing.heldDown { text += ": no scale-down while \(held)" }
      }
      return text
    }
    let models = sizing.objectives.compactMap { objective -> String? in
      guard let fit = objective.fit else { return nil }
      let line =
        "\(objective.latency.rawValue) = \(milliseconds(fit.alpha)) + \(milliseconds(fit.beta)) × concurrency (\(fit.samples) samples, r² \(hundredths(fit.rSquared)))"
      guard let capacity = objective.capacity else { return line + ", not sizing: its misses are measured" }
      return line + " allows \(hundredths(capacity)) at once"
    }
    var text = "\(objectives); "
    if !models.isEmpty { text += models.joined(separator: "; ") + "; " }
    text +=
      "load \(hundredths(sizing.load))/s, \(hundredths(sizing.forecast))/s a startup ahead\(describeForecast(sizing)) × \(hundredths(duration))s in flight = \(hundredths(sizing.forecast * duration)) at once / \(hundredths(capacity)) a \(prepared.unit)"
    let byLittle = sizing.byLittle ?? sizing.replicas
    text += " → \(byLittle)"
    if let slots = sizing.slots, let before = sizing.byLittle, let model = sizing.byQueueing, model > before,
      !sizing.corrected
    {
      text +=
        "; waits within the bounds on \(hundredths(slots)) slots a \(prepared.unit) (Erlang C, arrivals' dispersion \(hundredths(sizing.dispersion ?? 1))) need \(model)"
    }
    if let misses = sizing.byMisses, !sizing.corrected { text += "; \(describe(misses))" }
    if sizing.corrected { text += "; a measured latency is above its bound, so one more than now" }
    if sizing.settling {
      text +=
        "; a measured latency is above its bound, but has not risen since a replica became ready within the span it is measured over, so none more for it yet"
    }
    if sizing.spending {
      text +=
        "; a measured latency is above its bound, but its error budget has \(format(ErrorBudget.spendAbove * 100))% or more left, so none more for it: the misses are spent from the budget"
    }
    if let held = sizing.heldDown { text += "; no scale-down while \(held)" }
    if let peak = sizing.consolidation {
      text +=
        "; the busiest minute of the last \(format(SLOSizer.consolidationSpan / 60)) min had \(hundredths(peak.peak)) in flight, room for \(hundredths(peak.room)) a \(prepared.unit): no fewer than \(peak.replicas)"
    }
    return text
  }

  /// The curve of the share missed in one clause: what it measured with one unit fewer, against
  /// the share aimed at, and the count that carries the load within it.
  func describe(_ misses: MissSizing) -> String {
    let fewer = misses.units - 1
    let unit = prepared.unit
    let light = hundredths(misses.load / Double(misses.units))
    let at =
      misses.missed.map { "and \(percent($0)) where it carried \(light)/s" }
      ?? "and nothing was measured at or below \(light)/s"
    return
      "\(misses.latency.rawValue) missed \(percent(misses.missedWithFewer)) of requests where a \(unit) carried \(hundredths(misses.load / Double(fewer)))/s (\(hundredths(misses.load))/s smoothed on \(fewer)), above the \(percent(misses.allowed)) aimed at, \(at) (on \(misses.units)): \(misses.units)"
  }

  /// Where the load a startup ahead came from, where a seasonal profile is on: the higher of
  /// the trend's and the profile's.
  func describeForecast(_ sizing: SLOSizing) -> String {
    guard let seasonal = sizing.seasonal else { return "" }
    let source = sizing.forecast > sizing.trend ? "the profile's" : "the trend's"
    var text =
      " (\(source): the trend \(hundredths(sizing.trend))/s, the \(seasonal.periods)-period profile \(hundredths(seasonal.profile))/s"
    if seasonal.scale < 1 {
      text += " × \(hundredths(seasonal.scale)) for a quieter day = \(hundredths(seasonal.load))/s"
    }
    return text + ")"
  }
}

/// A share as a percentage to two decimals: 4.12%.
private func percent(_ share: Double) -> String { "\(hundredths(share * 100))%" }
