/// One tick's signal values by position: each name is looked up once a tick, and then every
/// target and condition reads its values by the positions the engine worked out from the
/// policy. Hashing signal names was half the cost of a steady tick.
struct SignalTable {
  /// The tick's values in the engine's signal order; lives for one tick (`decide`'s buffer).
  let values: UnsafeMutableBufferPointer<Double?>
  /// The inputs as given, for the rare lookup by name (a record's sentence).
  let byName: [String: Double]

  subscript(position: Int) -> Double? { values[position] }
  subscript(name: String) -> Double? { byName[name] }
}

/// The positions of the signals one rule reads, in its conditions' order.
typealias ConditionPositions = [Int]
