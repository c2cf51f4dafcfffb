import Foundation

/// One value per index, set from the iterations of a `DispatchQueue.concurrentPerform` and read
/// once they have all returned.
final class ConcurrentResults<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var values: [Value?]

  init(count: Int) { values = Array(repeating: nil, count: count) }

  func set(_ index: Int, _ value: Value?) { lock.withLock { values[index] = value } }
  func get(_ index: Int) -> Value? { lock.withLock { values[index] } }
}
