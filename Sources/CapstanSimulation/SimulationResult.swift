import CapstanCore
import Foundation

/// What one run did to one process, scored on its SLO.
public struct ProcessResult: Sendable, Equatable {
  public var name: String
  /// `policy`, or the baseline: `oracle`, `hpa`, `keda`.
  public var run: String
  public var slo: SimulationSettings.SLO
  public var requests: Int
  public var failed: Int
  public var replicaHours: Double
  public var costUSD: Double
  /// For a process with variants, each variant's replica-hours, in fill order; empty otherwise.
  public var variantReplicaHours: [VariantHours] = []
  /// What the oracle's search minimises: replica-seconds, or dollar-seconds an hour where the
  /// process has variants.
  var searchCost: Double
  public var sloAttainment: Double
  /// The lowest share inside the SLO over the run's scoring windows (`Simulator.window`), or
  /// `sloAttainment` without them.
  public var worstWindowAttainment: Double
  /// Per scoring window from the first arrival's minute: requests that arrived in it and
  /// missed the SLO.
  var windowMisses: [Int]
  var firstArrivalMinute: Int?
  /// Requests inside the SLO per replica-hour: the goodput per GPU that NVIDIA Dynamo's planner
  /// reports, where a replica is one GPU.
  public var goodputPerReplicaHour: Double
  /// Replica-hours over the hours from the start to one tick past the last arrival: the axis
  /// llm-d sets SLO attainment against.
  public var averageReplicas: Double
  public var sloMissMinutes: Int
  public var latencyP50: Double
  public var latencyP95: Double
  public var latencyP99: Double
  /// A lower bound no schedule can beat: the trace's service time over the slots of a replica,
  /// in replica-hours (capacity kept busy every second, no startup, no wait).
  public var workBoundReplicaHours: Double
  public var scaleActions: Int
  /// A move in the other direction within 5 minutes of the last: flapping.
  public var reversals: Int
  public var peakReplicas: Int

  init(fleet: Fleet, actions: ActionTally, run: String, seconds: Double) {
    name = fleet.target.name
    self.run = run
    slo = fleet.settings.slo
    let tally = fleet.tally
    requests = tally.requests
    failed = tally.failed
    replicaHours = fleet.replicaSeconds / 3600
    workBoundReplicaHours = tally.workSeconds / Double(fleet.settings.slots) / 3600
    costUSD = zip(fleet.kinds, fleet.kindSeconds).reduce(0) {
      $0 + $1.1 / 3600 * ($1.0.target.costPerHourUSD ?? 0)
    }
    if fleet.kinds.count > 1 || fleet.kinds.first?.target.variant != nil {
      variantReplicaHours = zip(fleet.kinds, fleet.kindSeconds).map {
        VariantHours(variant: $0.target.variant?.variant ?? $0.target.name, replicaHours: $1 / 3600)
      }
    }
    searchCost = fleet.cost
    sloAttainment = requests > 0 ? Double(tally.met) / Double(requests) : 1
    worstWindowAttainment = tally.worstWindowAttainment
    windowMisses = tally.windows.map { $0.all - $0.met }
    firstArrivalMinute = tally.firstArrivalMinute
    goodputPerReplicaHour = replicaHours > 0 ? Double(tally.met) / replicaHours : 0
    // Over the trace's span, the same for every run: a run that goes on past it (work left
    // waiting) does not dilute its average.
    let span = max(fleet.lastArrival.map { $0 + fleet.interval } ?? seconds, fleet.interval)
    averageReplicas = fleet.replicaSeconds / span
    sloMissMinutes = tally.missedMinutes
    let percentiles = tally.latencies.percentiles([0.5, 0.95, 0.99])
    latencyP50 = percentiles[0]
    latencyP95 = percentiles[1]
    latencyP99 = percentiles[2]
    scaleActions = actions.count
    reversals = actions.reversals
    peakReplicas = fleet.peakReplicas
  }
}

/// One variant's replica-hours in a run.
public struct VariantHours: Sendable, Equatable {
  public var variant: String
  public var replicaHours: Double
}

public struct SimulationResult: Sendable, Equatable {
  public var processes: [ProcessResult]
  public var ticks: Int
  /// Simulated seconds.
  public var seconds: Double
  /// How the runs began.
  public var start: Simulator.Start
  /// The run stopped once its verdict was settled (an oracle search's), so its scores cover
  /// only the ticks it ran.
  var cutShort = false
}
