import Foundation

/// Reads the numbers of a few keys from one JSON object on one line, byte by byte, checking the
/// whole line against the JSON grammar (RFC 8259) on the way. A trace runs to millions of
/// lines, and `JSONDecoder` costs several microseconds a line; this costs a fraction of one.
///
/// It answers only where the answer is plain: a valid object whose wanted keys each appear once,
/// unescaped, with a finite number. Anything else (an escape in a key, a duplicate, a wanted
/// value that is no number, a grammar error) gives nil, and the caller decodes the line with
/// `JSONDecoder`, whose verdict and error stand.
struct JSONLineScanner {
  private let bytes: UnsafeBufferPointer<UInt8>
  private var at = 0

  private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

  /// The values of `keys`, in their order, or nil where the line is not plainly such an object.
  static func numbers(_ keys: [StaticString], in line: UnsafeBufferPointer<UInt8>) -> [Double]? {
    var scanner = JSONLineScanner(line)
    return scanner.object(keys)
  }

  private mutating func object(_ keys: [StaticString]) -> [Double]? {
    var found: [Double?] = Array(repeating: nil, count: keys.count)
    skipSpace()
    guard take(UInt8(ascii: "{")) else { return nil }
    skipSpace()
    if !take(UInt8(ascii: "}")) {
      while true {
        guard let key = keyRange() else { return nil }
        skipSpace()
        guard take(UInt8(ascii: ":")) else { return nil }
        skipSpace()
        if let wanted = keys.firstIndex(where: { matches($0, key) }) {
          guard found[wanted] == nil, let value = number() else { return nil }
          found[wanted] = value
        } else {
          guard skipValue(depth: 0) else { return nil }
        }
        skipSpace()
        if take(UInt8(ascii: "}")) { break }
        guard take(UInt8(ascii: ",")) else { return nil }
        skipSpace()
      }
    }
    skipSpace()
    guard at == bytes.count else { return nil }
    let values = found.compactMap { $0 }
    return values.count == keys.count ? values : nil
  }

  private func matches(_ key: StaticString, _ range: Range<Int>) -> Bool {
    guard key.utf8CodeUnitCount == range.count else { return false }
    for offset in 0..<range.count where key.utf8Start[offset] != bytes[range.lowerBound + offset] {
      return false
    }
    return true
  }

  /// A key without escapes: the bytes between its quotes.
  private mutating func keyRange() -> Range<Int>? {
    guard take(UInt8(ascii: "\"")) else { return nil }
    let start = at
    while at < bytes.count {
      let byte = bytes[at]
      if byte == UInt8(ascii: "\"") {
        at += 1
        return start..<(at - 1)
      }
      guard byte != UInt8(ascii: "\\"), byte >= 0x20 else { return nil }
      at += 1
    }
    return nil
  }

  private mutating func skipValue(depth: Int) -> Bool {
    guard depth < 64, at < bytes.count else { return false }
    switch bytes[at] {
    case UInt8(ascii: "\""): return skipString()
    case UInt8(ascii: "{"), UInt8(ascii: "["):
      let close = bytes[at] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
      let isObject = close == UInt8(ascii: "}")
      at += 1
      skipSpace()
      if take(close) { return true }
      while true {
        if isObject {
          guard skipString() else { return false }
          skipSpace()
          guard take(UInt8(ascii: ":")) else { return false }
          skipSpace()
        }
        guard skipValue(depth: depth + 1) else { return false }
        skipSpace()
        if take(close) { return true }
        guard take(UInt8(ascii: ",")) else { return false }
        skipSpace()
      }
    case UInt8(ascii: "t"): return literal("true")
    case UInt8(ascii: "f"): return literal("false")
    case UInt8(ascii: "n"): return literal("null")
    default: return numberGrammar()
    }
  }

  /// A string, escapes checked (`\uXXXX` with four hex digits).
  private mutating func skipString() -> Bool {
    guard take(UInt8(ascii: "\"")) else { return false }
    while at < bytes.count {
      let byte = bytes[at]
      at += 1
      switch byte {
      case UInt8(ascii: "\""): return true
      case UInt8(ascii: "\\"):
        guard at < bytes.count else { return false }
        let escaped = bytes[at]
        at += 1
        if escaped == UInt8(ascii: "u") {
          for _ in 0..<4 {
            guard at < bytes.count, isHex(bytes[at]) else { return false }
            at += 1
          }
        } else if !"\"\\/bfnrt".utf8.contains(escaped) {
          return false
        }
      case 0..<0x20: return false
      default: continue
      }
    }
    return false
  }

  private func isHex(_ byte: UInt8) -> Bool {
    (48...57).contains(byte) || (65...70).contains(byte) || (97...102).contains(byte)
  }

  private mutating func literal(_ word: StaticString) -> Bool {
    let count = word.utf8CodeUnitCount
    guard at + count <= bytes.count else { return false }
    for offset in 0..<count where word.utf8Start[offset] != bytes[at + offset] { return false }
    at += count
    return true
  }

  /// A JSON number that is finite as a Double; nil (and nothing consumed) otherwise.
  private mutating func number() -> Double? {
    let start = at
    guard numberGrammar() else {
      at = start
      return nil
    }
    // Whole numbers of up to 15 digits, most of a trace, are exact without a conversion call.
    if at - start <= 15, bytes[start..<at].allSatisfy({ (48...57).contains($0) }) {
      var whole = 0
      for byte in bytes[start..<at] { whole = whole * 10 + Int(byte - 48) }
      return Double(whole)
    }
    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
    guard let value = Double(text), value.isFinite else {
      at = start
      return nil
    }
    return value
  }

  /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
  private mutating func numberGrammar() -> Bool {
    _ = take(UInt8(ascii: "-"))
    guard at < bytes.count else { return false }
    if bytes[at] == UInt8(ascii: "0") {
      at += 1
    } else {
      guard digits() else { return false }
    }
    if take(UInt8(ascii: ".")) { guard digits() else { return false } }
    if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
      if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
      guard digits() else { return false }
    }
    return true
  }

  private mutating func digits() -> Bool {
    let start = at
    while at < bytes.count && (48...57).contains(bytes[at]) { at += 1 }
    return at > start
  }

  private mutating func skipSpace() {
    while at < bytes.count && (bytes[at] == 32 || bytes[at] == 9 || bytes[at] == 10 || bytes[at] == 13) {
      at += 1
    }
  }

  private mutating func take(_ byte: UInt8) -> Bool {
    guard at < bytes.count, bytes[at] == byte else { return false }
    at += 1
    return true
  }
}
