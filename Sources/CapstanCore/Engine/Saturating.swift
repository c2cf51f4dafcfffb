import Foundation

extension Int {
  /// The nearest Int to a Double: saturates at the ends and takes NaN as 0, where `Int(_:)` would
  /// stop the process. Every count the engine computes from input passes through here.
  public init(saturating value: Double) {
    if value.isNaN {
      self = 0
    } else if value >= 9.2e18 {
      self = .max
    } else if value <= -9.2e18 {
      self = .min
    } else {
      self = Int(value)
    }
  }

  /// Addition that stops at the ends instead of trapping.
  public func saturatingAdd(_ other: Int) -> Int {
    let (sum, overflow) = addingReportingOverflow(other)
    return overflow ? (other > 0 ? .max : .min) : sum
  }
}
