import Foundation

/// client-go's token bucket: `qps` requests a second on average, up to `burst` at once after a
/// quiet spell. Pure (time is an argument), so it is tested on a manual clock.
public struct RequestRateLimiter: Sendable, Equatable {
  public let qps: Double
  public let burst: Int
  /// Tokens in the bucket at `updated`; below zero, requests already promised a later slot.
  private var tokens: Double
  private var updated: Date?

  public init(qps: Double, burst: Int) {
    precondition(qps > 0 && burst >= 1, "qps must be above 0 and burst at least 1")
    self.qps = qps
    self.burst = burst
    self.tokens = Double(burst)
  }

  /// Takes a slot for one request at `now`: how long it must wait before it goes (0 if it may go
  /// now). Every call is granted a slot, in the order asked, as golang.org/x/time/rate's
  /// `Reserve` grants them.
  public mutating func reserve(at now: Date) -> TimeInterval {
    if let updated {
      let elapsed = max(0, now.timeIntervalSince(updated))
      tokens = min(Double(burst), tokens + elapsed * qps)
    }
    updated = now
    tokens -= 1
    return tokens >= 0 ? 0 : -tokens / qps
  }
}
