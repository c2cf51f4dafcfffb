/// Saved values per process (a target's windows and timers, a budget's ledger), read and written
/// by process name like a dictionary and saved as one, but kept in the engine's order of targets:
/// a tick reaches each target's value by position instead of hashing its name (the engine
/// benchmarks at 10,000 targets measure it).
public struct ProcessTable<Value: Sendable & Equatable & Codable>: Sendable, Sequence {
  /// Every name ever stored, in slot order; a removed one keeps its slot, empty.
  private var names: [String] = []
  /// The values by position; nil: none for that name.
  var slots: [Value?] = []
  private var positions: [String: Int] = [:]
  /// The engine order the first slots follow (its targets, one slot each); nil until an engine
  /// arranges the table. Names added later go after them, so the positions stay right.
  private var order: TargetOrder?

  public init() {}

  public init(_ values: [String: Value]) {
    for (name, value) in values.sorted(by: { $0.key < $1.key }) { self[name] = value }
  }

  public subscript(name: String) -> Value? {
    get { positions[name].flatMap { slots[$0] } }
    set {
      if let position = positions[name] {
        slots[position] = newValue
      } else if let newValue {
        positions[name] = names.count
        names.append(name)
        slots.append(newValue)
      }
    }
  }

  /// The names that hold a value, in slot order.
  public var keys: [String] { names.indices.filter { slots[$0] != nil }.map { names[$0] } }
  public var count: Int { slots.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
  public var isEmpty: Bool { !slots.contains { $0 != nil } }

  public func makeIterator() -> some IteratorProtocol<(key: String, value: Value)> {
    zip(names, slots).lazy.compactMap { name, slot in slot.map { (key: name, value: $0) } }.makeIterator()
  }

  /// Changes target `position`'s value in place (made from `default` where there is none), in
  /// a table this engine arranged. The value is moved out of its slot and back, so changing it
  /// copies nothing it holds.
  mutating func update<Result>(
    atTarget position: Int, default make: @autoclosure () -> Value, _ body: (inout Value) -> Result
  ) -> Result {
    var value = slots[position].take() ?? make()
    let result = body(&value)
    // Consumed back into the slot, so the value is moved, not copied and released.
    slots[position] = consume value
    return result
  }

  /// Target `position`'s value: by position where the table is arranged for `order`, by name
  /// otherwise.
  func value(atTarget position: Int, of order: TargetOrder) -> Value? {
    self.order === order ? slots[position] : self[order.names[position]]
  }

  /// Puts the engine's targets in the first slots, in its order, so that slot `i` is target `i`.
  /// Once per engine: afterwards the same engine finds the table arranged and does nothing.
  mutating func arrange(_ order: TargetOrder) {
    guard self.order !== order else { return }
    var arranged = ProcessTable()
    for name in order.names {
      arranged.names.append(name)
      arranged.positions[name] = arranged.slots.count
      arranged.slots.append(self[name])
    }
    for (position, name) in names.enumerated() where arranged.positions[name] == nil {
      if let value = slots[position] { arranged[name] = value }
    }
    arranged.order = order
    self = arranged
  }
}

extension ProcessTable: Equatable {
  /// Equal when they hold the same names with the same values, whatever their order.
  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.count == rhs.count && lhs.allSatisfy { rhs[$0.key] == $0.value }
  }
}

extension ProcessTable: Codable {
  /// Saved as the dictionary it stands for, so state files read and write as before.
  public init(from decoder: any Decoder) throws {
    self.init(try decoder.singleValueContainer().decode([String: Value].self))
  }

  /// As a dictionary by name, each value written straight from its slot: at ten thousand
  /// processes, building a dictionary to encode is a copy of the whole table each save.
  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: NameKey.self)
    for (name, slot) in zip(names, slots) {
      if let value = slot { try container.encode(value, forKey: NameKey(stringValue: name)) }
    }
  }

  private struct NameKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }
}

/// An engine's targets by name, in policy order; a table arranged for one engine is known by
/// this object's identity, which the table holds so it cannot be reused by another.
final class TargetOrder: Sendable {
  let names: [String]
  private let positions: [String: Int]

  init(_ names: [String]) {
    self.names = names
    positions = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
  }

  func position(of name: String) -> Int? { positions[name] }
}
