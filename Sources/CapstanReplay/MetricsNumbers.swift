import Foundation

/// A decimal number from a cell's bytes, with no String made: a plain decimal is read here
/// (`exactDecimal`) and anything else by C's `strtod` from a NUL-ended copy on the stack. The
/// whole cell must be the number; nil otherwise, or for a NUL byte. The replay-floor benchmark
/// (`Benchmarks/replay-floor`) measures it against a bare C `strtod` pass.
func parseNumber(_ cell: UnsafeBufferPointer<UInt8>) -> Double? {
  if let value = exactDecimal(cell) { return value }
  guard !cell.isEmpty, cell.count < 64, !cell.contains(0) else {
    // Longer than any number needs, or not text: the slow path says no as Double(String) does.
    return cell.contains(0) ? nil : Double(String(decoding: cell, as: UTF8.self))
  }
  // strtod skips leading spaces and would read "1e", a "0x" prefix or "infinity" as Double()
  // does not quite; the same characters Double(String) takes are let through.
  guard let first = cell.first, first != 32, first != 9 else { return nil }
  return withUnsafeTemporaryAllocation(of: CChar.self, capacity: cell.count + 1) { copy in
    for index in 0..<cell.count { copy[index] = CChar(bitPattern: cell[index]) }
    copy[cell.count] = 0
    guard let base = copy.baseAddress else { return nil }
    var end: UnsafeMutablePointer<CChar>?
    let value = strtod(base, &end)
    guard let end, end == base + cell.count else { return nil }
    return value
  }
}

/// 10^power for 0...22, the powers of ten a Double holds exactly. A switch of literals, not a
/// global table: a global is checked for its one-time setup on every cell.
private func exactPowerOfTen(_ power: Int) -> Double {
  switch power {
  case 0: 1
  case 1: 1e1
  case 2: 1e2
  case 3: 1e3
  case 4: 1e4
  case 5: 1e5
  case 6: 1e6
  case 7: 1e7
  case 8: 1e8
  case 9: 1e9
  case 10: 1e10
  case 11: 1e11
  case 12: 1e12
  case 13: 1e13
  case 14: 1e14
  case 15: 1e15
  case 16: 1e16
  case 17: 1e17
  case 18: 1e18
  case 19: 1e19
  case 20: 1e20
  case 21: 1e21
  default: 1e22
  }
}

/// A cell of the form `[+-]digits[.digits]` whose digits, read as one integer, fit in 2^53
/// and with at most 22 after the point: the integer and the power of ten are both exact
/// Doubles, so one IEEE division rounds correctly and gives exactly what `strtod` gives (the
/// fast path of Clinger's algorithm). Recorded metrics are almost all of this form. nil for
/// anything else, which `strtod` then reads.
func exactDecimal(_ cell: UnsafeBufferPointer<UInt8>) -> Double? {
  guard let (value, end) = leadingExactDecimal(cell, from: 0), end == cell.count else { return nil }
  return value
}

/// The exact decimal (as `exactDecimal` reads it) that starts at `start`, and where it stops:
/// a row's cells are read where they start, and a cell that stops at its comma needs no other
/// pass over its bytes. nil where no exact decimal starts there.
/// Inlined into the row loop, which calls it for every cell of a recording.
@inline(__always)
func leadingExactDecimal(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (value: Double, end: Int)? {
  var index = start
  let negative = index < bytes.count && bytes[index] == UInt8(ascii: "-")
  if negative || index < bytes.count && bytes[index] == UInt8(ascii: "+") { index += 1 }
  // Wrapping arithmetic: more than 19 digits may wrap, and are refused below by their count.
  var mantissa: UInt64 = 0
  let integerStart = index
  while index < bytes.count, case let digit = bytes[index] &- 48, digit < 10 {
    mantissa = mantissa &* 10 &+ UInt64(digit)
    index += 1
  }
  var digits = index - integerStart
  var fractionDigits = 0
  if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
    index += 1
    let fractionStart = index
    while index < bytes.count, case let digit = bytes[index] &- 48, digit < 10 {
      mantissa = mantissa &* 10 &+ UInt64(digit)
      index += 1
    }
    fractionDigits = index - fractionStart
    digits += fractionDigits
  }
  // 19 digits always fit in a UInt64.
  guard digits > 0, digits <= 19, mantissa <= 1 << 53, fractionDigits <= 22 else { return nil }
  let value = Double(mantissa) / exactPowerOfTen(fractionDigits)
  return (negative ? -value : value, index)
}
