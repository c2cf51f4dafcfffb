/// One tick's signal values by position: each target and condition reads its values at the
/// positions the engine worked out from the policy, so no signal name is hashed after the
/// tick's first lookup.
struct SignalTable {
  /// The tick's values in the engine's signal order; lives for one tick.
  /// Plain memory and nothing else: a record's sentence finds a signal by the position worked
  /// out for it, so the table holds no names, and a target's context copies and drops for free.
  let values: UnsafeBufferPointer<Double?>

  subscript(position: Int) -> Double? { values[position] }

  /// A target's signals as a record lists them.
  func values(of prepared: PreparedTarget) -> [(name: String, value: Double?)] {
    prepared.recordSignals.map { ($0.name, $0.position.flatMap { values[$0] }) }
  }
}

/// The positions of the signals one rule reads, in its conditions' order.
typealias ConditionPositions = [Int]

/// One tick's inputs by position, for a driver that keeps them in the engine's order and
/// updates them in place: no name is hashed in a tick. `ScalingEngine.emptyInputs()` makes one
/// in the engine's layout, and `position(ofSignal:)` and `position(ofTarget:)` find a place in
/// it. (`EngineInputs`, by name, is read into a `SignalTable` once a tick instead.)
public struct IndexedInputs: Sendable {
  /// Values in `ScalingEngine.signalOrder`; nil is missing.
  public var signals: [Double?]
  /// Per target, in the policy's order; nil is not decided this tick.
  public var replicas: [ReplicaStatus?]

  public init(signals: [Double?], replicas: [ReplicaStatus?]) {
    self.signals = signals
    self.replicas = replicas
  }
}
