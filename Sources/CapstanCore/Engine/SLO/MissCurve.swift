import Foundation

/// The share of an objective's requests outside its bound, as measured, by the load one unit of
/// capacity carried: what the fleet has missed at each load, learned from the share within the
/// bound that an error budget counts. The latency model and the queueing estimate take arrivals
/// to be smooth at the scale of a tick; requests that arrive in bursts, more at once than a
/// replica's slots, wait however the load is averaged, and only the measured share shows how
/// often. Sizing keeps each unit's load where the share missed has been within what the budget
/// aims at.
public struct MissCurve: Sendable, Equatable, Codable {
  /// Requests counted at one band of per-unit load, and those outside the bound, older ones
  /// forgotten.
  public struct Cell: Sendable, Equatable, Codable {
    /// Per-unit loads from `width` to the power of `band` up to the next band.
    public var band: Int
    public var requests: Double
    public var missed: Double
  }

  /// Sorted by band.
  public private(set) var cells: [Cell] = []

  /// Each band spans a tenth more load than the one below.
  static let width = 1.1
  /// Below this per-unit load (requests a second) nothing is learned: a unit that idle misses
  /// for reasons load does not explain.
  static let lightest = 1e-6
  /// A band's counts are weighed by this at each tick it learns: about its last thousand ticks.
  static let forgetting = 0.999
  /// A band's share is used once it has counted this many requests, so one miss in a handful
  /// does not read as a share of the whole.
  static let minimumRequests = 500.0
  /// The bands kept at most: every band from `lightest` to 1e15 requests a second.
  static let mostCells = 600

  public init() {}

  static func band(of perUnit: Double) -> Int { Int((log(perUnit) / log(width)).rounded(.down)) }

  /// Counts one tick's requests and misses at the per-unit load they came at.
  mutating func add(perUnit: Double, requests: Double, missed: Double) {
    guard perUnit.isFinite, perUnit >= Self.lightest, perUnit <= PolicyLimits.maxMagnitude,
      requests.isFinite, missed.isFinite, requests > 0, missed >= 0, requests <= PolicyLimits.maxMagnitude
    else { return }
    let band = Self.band(of: perUnit)
    let missed = min(missed, requests)
    let f = Self.forgetting
    if let index = cells.firstIndex(where: { $0.band == band }) {
      cells[index].requests = cells[index].requests * f + requests
      cells[index].missed = cells[index].missed * f + missed
    } else {
      cells.append(Cell(band: band, requests: requests, missed: missed))
      cells.sort { $0.band < $1.band }
    }
  }

  /// The share missed at `perUnit`: that of the nearest band at or below its load among those
  /// that have counted enough (a load heavier than any measured reads the heaviest); nil where
  /// none has.
  public func missed(perUnit: Double) -> Double? {
    guard perUnit.isFinite, perUnit > 0 else { return nil }
    let band = Self.band(of: max(perUnit, Self.lightest))
    let nearest = cells.last { $0.band <= band && $0.requests >= Self.minimumRequests }
    return nearest.map { $0.missed / $0.requests }
  }

  /// The fewest units, up to `limit`, whose load of `load` each misses at most `allowed` as far
  /// as has been measured; nil where nothing measured rules one unit out, or where no band has
  /// met `allowed`: misses at every load measured are not the load's, and more units would not
  /// mend them.
  func units(load: Double, allowed: Double, limit: Int) -> Int? {
    guard load > 0, limit > 1,
      cells.contains(where: { $0.requests >= Self.minimumRequests && $0.missed / $0.requests <= allowed })
    else { return nil }
    func meets(_ units: Int) -> Bool { (missed(perUnit: load / Double(units)) ?? 0) <= allowed }
    guard !meets(1) else { return nil }
    // Each unit carries less as the count rises, and misses as much or less: bisect. Where the
    // bands measured are out of that order (a band with few misses below one with more), the
    // count found meets the aim (or is the limit), though a smaller one may too.
    var (below, above) = (1, limit)
    while above - below > 1 {
      let middle = below + (above - below) / 2
      if meets(middle) { above = middle } else { below = middle }
    }
    return above
  }

  var isSound: Bool {
    cells.count <= Self.mostCells
      && zip(cells, cells.dropFirst()).allSatisfy { $0.band < $1.band }
      && cells.allSatisfy {
        $0.requests.isFinite && $0.missed.isFinite && $0.requests > 0 && $0.missed >= 0
          && $0.missed <= $0.requests && $0.requests <= PolicyLimits.maxMagnitude / (1 - Self.forgetting)
      }
  }
}

extension SLOSizer {
  /// Counts a settled tick's requests and misses into each objective's curve, where the
  /// objective has a share within its bound measured.
  static func learnMisses(_ observation: SLOObservation, _ slo: SLOScaling, state: inout SLOState) {
    guard let load = observation.load, load > 0 else { return }
    let units = observation.capacity?.current ?? Double(observation.status.current)
    guard units > 0 else { return }
    for (index, objective) in slo.objectives.enumerated() where objective.within != nil {
      guard index < observation.within.count, let within = observation.within[index], within.isFinite
      else { continue }
      let requests = load * observation.tick
      let missed = requests * (1 - min(max(within, 0), 1))
      var curves = state.misses ?? [:]
      // By the smoothed load, as sizing reads it: a burst's misses belong to the load around
      // it, not to the minute the burst raised.
      curves[objective.latency.rawValue, default: MissCurve()].add(
        perUnit: state.trend.level / units, requests: requests, missed: missed)
      state.misses = curves
    }
  }

  /// The most units any objective's curve asks for to carry `load` each within the share of
  /// misses it aims at, as far as the curve has measured; nil where none rules out one unit.
  static func missUnits(
    _ objectives: [SLOSizing.ObjectiveState], state: SLOState, load: Double, limit: Int
  ) -> MissSizing? {
    var most: MissSizing?
    for objective in objectives {
      guard let curve = state.misses?[objective.latency.rawValue] else { continue }
      let allowed = 1 - objective.aim / 100
      guard let units = curve.units(load: load, allowed: allowed, limit: limit), units > (most?.units ?? 0)
      else { continue }
      most = MissSizing(
        latency: objective.latency, units: units, load: load, allowed: allowed,
        missedWithFewer: curve.missed(perUnit: load / Double(units - 1)) ?? 0,
        missed: curve.missed(perUnit: load / Double(units)))
    }
    return most
  }
}

/// What an objective's curve of the share missed asked for: the fewest units that carry the
/// smoothed load each within the share aimed at, and the shares measured with one fewer and
/// with that many, for the record.
public struct MissSizing: Sendable, Equatable {
  public var latency: SLOScaling.Latency
  public var units: Int
  /// What the model gave, Little's law and the queueing check, below `units`.
  public var model = 0
  /// Requests a second, all units together: the load's smoothed level.
  public var load: Double
  /// The share of requests outside the bound aimed at, 0 to 1.
  public var allowed: Double
  public var missedWithFewer: Double
  /// Nil where the curve has measured nothing at or below that per-unit load.
  public var missed: Double?
}
