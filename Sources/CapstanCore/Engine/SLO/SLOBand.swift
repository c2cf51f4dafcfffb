import Foundation

extension SLOSizer {
  /// Below this share of every bound, with nothing waiting, the band rule removes a replica.
  static let bandLow = 0.5

  /// Until the models are ready: one more replica while a latency is above its bound (and no
  /// replica is starting), one fewer once every latency is under half its bound and nothing
  /// waits (the last one only once no load arrives), and the same count between.
  ///
  /// One fewer only if the requests running now would still find room on the replicas left:
  /// the planner's N/(N−1) consolidation test, with what has been seen standing in for the
  /// model. Room is a replica's slots where they have been seen, and before that the most a
  /// replica has run with every latency under half its bound and nothing waiting (or one
  /// request). A latency that includes waiting stays low until the slots fill and then climbs
  /// by the queue, so a latency far under its bound says nothing about one replica fewer.
  /// `held` says why one was kept.
  static func band(
    _ observation: SLOObservation, _ slo: SLOScaling, state: SLOState, held: inout String?
  ) -> Int {
    let current = observation.status.current
    if current == 0 { return (observation.load ?? 0) > 0 ? 1 : 0 }
    let starting = observation.starting
    var allLow = true
    for (index, objective) in slo.objectives.enumerated() {
      guard let value = observation.measured[index] else {
        if !observation.idle { allLow = false }
        continue
      }
      if value > objective.bound { return starting ? current : current + 1 }
      if value >= objective.bound * bandLow { allLow = false }
    }
    // The last replica goes only once no load arrives.
    guard allLow, (observation.waiting ?? 0) == 0, let load = observation.load, current > 1 || load == 0
    else { return current }
    if current > 1, let running = observation.running {
      let left = observation.concurrency(running) * Double(current) / Double(current - 1)
      let room = state.fullAt ?? max(state.comfortable ?? 0, 1)
      if left > room {
        let seen =
          state.fullAt != nil
          ? "its \(hundredths(room)) slots" : "the \(hundredths(room)) at once seen well within the bounds"
        held =
          "the \(hundredths(running)) requests running would put \(hundredths(left)) on each replica of one fewer, above \(seen)"
        return current
      }
    }
    return current - 1
  }

  /// Every latency measured is under half its bound, and none is missing.
  static func comfortable(_ observation: SLOObservation, _ slo: SLOScaling) -> Bool {
    slo.objectives.indices.allSatisfy { index in
      guard index < observation.measured.count, let value = observation.measured[index] else { return false }
      return value < slo.objectives[index].bound * bandLow
    }
  }
}
