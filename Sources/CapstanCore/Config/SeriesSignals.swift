import Foundation

// Signals declared with `series_label`: one query whose series feed a process each.
extension PolicyValidator {
  /// Replaces each signal declared with `series_label` by one signal per process that reads it,
  /// named `NAME[PROCESS]`, which takes the series whose label is the process's Kubernetes
  /// workload name (or, without one, the process's name). The processes' references follow, so
  /// the engine, the records and the recordings see an ordinary signal per process, and the
  /// live controller reads them all with one query (`SignalReaders.make`).
  func expandSeriesSignals(_ policy: inout Policy) {
    var signals: [SignalSpec] = []
    for spec in policy.signals {
      guard case .prometheus(let settings)? = spec.source, settings.seriesLabel != nil else {
        signals.append(spec)
        continue
      }
      for index in policy.targets.indices where policy.targets[index].signalNames.contains(spec.name) {
        let target = policy.targets[index]
        var own = settings
        own.series = target.kubernetes?.name ?? target.name
        let name = "\(spec.name)[\(target.name)]"
        signals.append(
          SignalSpec(
            name: name, location: spec.location, perReplicaOf: spec.perReplica ? target.name : nil,
            source: .prometheus(own), seriesOf: spec.name))
        policy.targets[index].renameSignal(spec.name, to: name)
      }
    }
    policy.signals = signals
  }
}

extension ScalingTarget {
  /// Every reference to signal `old` reads `new` instead.
  mutating func renameSignal(_ old: String, to new: String) {
    func renamed(_ name: String) -> String { name == old ? new : name }
    metric = metric.map(renamed)
    if let tracked = tracking?.metric { tracking?.metric = renamed(tracked) }
    for direction in [ScaleDirection.up, .down] {
      guard var rule = rules(direction).rule else { continue }
      for index in rule.conditions.indices {
        rule.conditions[index].metric = renamed(rule.conditions[index].metric)
      }
      if direction == .up { up.rule = rule } else { down.rule = rule }
    }
    if let costRate = budget?.costRateMetric { budget?.costRateMetric = renamed(costRate) }
    if let forecast = predictive?.signal { predictive?.signal = renamed(forecast) }
  }
}
