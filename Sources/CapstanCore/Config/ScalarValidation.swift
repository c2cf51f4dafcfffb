import Foundation

// Scalars with their units and ranges, each reported at its position.
extension PolicyValidator {
  // MARK: Scalars

  /// The parsed value, or nil with the parser's message reported at the scalar.
  func reported<Value>(_ result: Result<Value, QuantityError>, at raw: RawScalar) -> Value? {
    switch result {
    case .success(let value): return value
    case .failure(let failure):
      sink.error(raw.location, failure.message)
      return nil
    }
  }

  func duration(_ raw: RawScalar) -> TimeInterval? { reported(Quantity.duration(raw.text), at: raw) }

  func memory(_ raw: RawScalar) -> Double? { reported(Quantity.memory(raw.text), at: raw) }

  func count(_ raw: RawScalar, _ what: String) -> Int? {
    reported(Quantity.count(raw.text, what: what), at: raw)
  }

  func wholeGPUs(_ raw: RawScalar) -> Int? {
    if let value = Double(raw.text), value >= 0, value != value.rounded() {
      sink.error(
        raw.location,
        "gpu is \(raw.text): GPUs come whole; ask for \(Int(value.rounded(.up))) (a fraction of a GPU is a MIG or time-slicing setting of the device, not a replica count)"
      )
      return nil
    }
    return count(raw, "GPUs")
  }

  func nonNegative(_ raw: RawScalar, _ unit: String) -> Double? {
    switch Quantity.number(raw.text, what: "write a number in \(unit)") {
    case .success(let value) where value >= 0: return value
    case .success: sink.error(raw.location, "'\(raw.text)' is negative: write 0 or more (\(unit))")
    case .failure(let failure): sink.error(raw.location, failure.message)
    }
    return nil
  }

  func positive(_ raw: RawScalar, _ unit: String) -> Double? {
    switch Quantity.number(raw.text, what: "write a number in \(unit)") {
    case .success(let value) where value > 0: return value
    case .success: sink.error(raw.location, "'\(raw.text)' must be above zero (\(unit))")
    case .failure(let failure): sink.error(raw.location, failure.message)
    }
    return nil
  }

  func fraction(_ raw: RawScalar, _ key: String) -> Double? {
    if case .success(let percent) = Quantity.percent(raw.text), percent > 0, percent <= 100 {
      return percent / 100
    }
    guard let value = Double(raw.text), value > 0, value <= 1 else {
      sink.error(
        raw.location, "\(key) is '\(raw.text)': write a fraction between 0 and 1, such as 0.8 (or 80%)")
      return nil
    }
    return value
  }

  /// An IANA time zone name.
  func timeZone(_ raw: RawScalar) -> TimeZone? {
    guard let zone = TimeZone(identifier: raw.text) else {
      sink.error(
        raw.location,
        "timezone '\(raw.text)' is unknown: use an IANA name such as UTC, Europe/Berlin or America/New_York")
      return nil
    }
    return zone
  }
}
