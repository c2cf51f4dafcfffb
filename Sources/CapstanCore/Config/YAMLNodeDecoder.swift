import Foundation
import Yams

/// A `Decoder` over a composed Yams node tree. Yams' own `YAMLDecoder` stops at the first error
/// and forgets where values came from; this one keeps each node's line and column, reports every
/// key the target type does not declare (with a "did you mean"), and turns a mapping where a list
/// belongs (or the reverse) into a diagnostic instead of an exception, so one pass finds every
/// problem in a file.
struct YAMLNodeDecoder: Decoder {
  let node: Node
  let sink: DiagnosticSink
  let codingPath: [any CodingKey]
  var userInfo: [CodingUserInfoKey: Any] { [:] }

  func location(of node: Node) -> FileLocation {
    let mark = node.mark
    return FileLocation(file: sink.file, line: mark?.line ?? 1, column: mark?.column ?? 1)
  }

  var location: FileLocation { location(of: node) }

  /// `a.b.c` as the user would write the path in the file.
  var pathDescription: String {
    let parts = codingPath.map { key in key.intValue.map { "[\($0)]" } ?? key.stringValue }
    return parts.isEmpty
      ? "the top level" : parts.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
  }

  func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
    var entries: [(key: String, keyNode: Node, value: Node)] = []
    if let mapping = node.mapping {
      for (keyNode, value) in mapping {
        guard let name = keyNode.scalar?.string else {
          sink.error(location(of: keyNode), "a key in \(pathDescription) must be a plain name")
          continue
        }
        guard Key(stringValue: name) != nil else {
          reportUnknownKey(name, at: keyNode, known: Key.self)
          continue
        }
        entries.append((name, keyNode, value))
      }
    } else if !node.isNull {
      sink.error(location, "\(pathDescription) must be a mapping of keys, not \(node.kindDescription)")
    }
    return KeyedDecodingContainer(KeyedNodeContainer<Key>(decoder: self, entries: entries))
  }

  func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
    var items: [Node] = []
    if let sequence = node.sequence {
      items = Array(sequence)
    } else if !node.isNull {
      sink.error(
        location, "\(pathDescription) must be a list (items start with '- '), not \(node.kindDescription)")
    }
    return UnkeyedNodeContainer(decoder: self, items: items)
  }

  func singleValueContainer() throws -> any SingleValueDecodingContainer {
    SingleValueNodeContainer(decoder: self)
  }

  func child(_ node: Node, key: any CodingKey) -> YAMLNodeDecoder {
    YAMLNodeDecoder(node: node, sink: sink, codingPath: codingPath + [key])
  }

  private func reportUnknownKey<Key: CodingKey>(_ name: String, at keyNode: Node, known: Key.Type) {
    let candidates = ((Key.self as? any CaseIterable.Type)?.allCasesAsKeys ?? []).map(\.stringValue)
    var message = "unknown key '\(name)' in \(pathDescription)"
    if let suggestion = closestMatch(to: name, in: candidates) {
      message += "; did you mean '\(suggestion)'?"
    } else if !candidates.isEmpty {
      message += "; expected one of: \(candidates.joined(separator: ", "))"
    }
    sink.error(location(of: keyNode), message)
  }

  /// Decodes a scalar through `LosslessStringConvertible`; the raw file types keep text and
  /// convert during validation, so this exists for completeness of the protocol.
  func scalar<T: LosslessStringConvertible>(_ type: T.Type) throws -> T {
    guard let text = node.scalar?.string, let value = T(text) else {
      throw DecodingError.typeMismatch(
        T.self, .init(codingPath: codingPath, debugDescription: "\(location): expected \(T.self)"))
    }
    return value
  }
}

extension CaseIterable {
  fileprivate static var allCasesAsKeys: [any CodingKey] { allCases.compactMap { $0 as? any CodingKey } }
}

extension Node {
  var isNull: Bool {
    guard let scalar = scalar else { return false }
    return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
  }

  var kindDescription: String {
    switch self {
    case .scalar(let scalar): return "the value '\(scalar.string)'"
    case .mapping: return "a mapping"
    case .sequence: return "a list"
    case .alias: return "an alias"
    }
  }
}

struct NodeCodingKey: CodingKey {
  var stringValue: String
  var intValue: Int?
  init(stringValue: String) { self.stringValue = stringValue }
  init(intValue: Int) {
    self.stringValue = "\(intValue)"
    self.intValue = intValue
  }
}

private struct KeyedNodeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
  let decoder: YAMLNodeDecoder
  let entries: [(key: String, keyNode: Node, value: Node)]

  var codingPath: [any CodingKey] { decoder.codingPath }
  var allKeys: [Key] { entries.compactMap { Key(stringValue: $0.key) } }

  func contains(_ key: Key) -> Bool { entries.contains { $0.key == key.stringValue } }

  private func childDecoder(_ key: Key) throws -> YAMLNodeDecoder {
    guard let entry = entries.first(where: { $0.key == key.stringValue }) else {
      throw DecodingError.keyNotFound(
        key,
        .init(codingPath: codingPath, debugDescription: "\(decoder.location): missing '\(key.stringValue)'"))
    }
    return decoder.child(entry.value, key: key)
  }

  func decodeNil(forKey key: Key) throws -> Bool { try childDecoder(key).node.isNull }
  func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try T(from: childDecoder(key)) }
  func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try childDecoder(key).scalar(type) }
  func decode(_ type: String.Type, forKey key: Key) throws -> String { try childDecoder(key).scalar(type) }
  func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try childDecoder(key).scalar(type) }
  func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try childDecoder(key).scalar(type) }
  func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try childDecoder(key).scalar(type) }
  func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try childDecoder(key).scalar(type) }
  func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try childDecoder(key).scalar(type) }
  func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try childDecoder(key).scalar(type) }
  func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try childDecoder(key).scalar(type) }
  func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try childDecoder(key).scalar(type) }
  func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try childDecoder(key).scalar(type) }
  func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try childDecoder(key).scalar(type) }
  func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try childDecoder(key).scalar(type) }
  func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try childDecoder(key).scalar(type) }

  func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
    -> KeyedDecodingContainer<NestedKey>
  { try childDecoder(key).container(keyedBy: type) }
  func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
    try childDecoder(key).unkeyedContainer()
  }
  func superDecoder() throws -> any Decoder { decoder }
  func superDecoder(forKey key: Key) throws -> any Decoder { try childDecoder(key) }
}

private struct UnkeyedNodeContainer: UnkeyedDecodingContainer {
  let decoder: YAMLNodeDecoder
  let items: [Node]
  var currentIndex = 0

  init(decoder: YAMLNodeDecoder, items: [Node]) {
    self.decoder = decoder
    self.items = items
  }

  var codingPath: [any CodingKey] { decoder.codingPath }
  var count: Int? { items.count }
  var isAtEnd: Bool { currentIndex >= items.count }

  private mutating func next() throws -> YAMLNodeDecoder {
    guard !isAtEnd else {
      throw DecodingError.valueNotFound(
        Any.self, .init(codingPath: codingPath, debugDescription: "\(decoder.location): list ended"))
    }
    defer { currentIndex += 1 }
    return decoder.child(items[currentIndex], key: NodeCodingKey(intValue: currentIndex))
  }

  mutating func decodeNil() throws -> Bool {
    guard !isAtEnd, items[currentIndex].isNull else { return false }
    currentIndex += 1
    return true
  }
  mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: next()) }
  mutating func decode(_ type: Bool.Type) throws -> Bool { try next().scalar(type) }
  mutating func decode(_ type: String.Type) throws -> String { try next().scalar(type) }
  mutating func decode(_ type: Double.Type) throws -> Double { try next().scalar(type) }
  mutating func decode(_ type: Float.Type) throws -> Float { try next().scalar(type) }
  mutating func decode(_ type: Int.Type) throws -> Int { try next().scalar(type) }
  mutating func decode(_ type: Int8.Type) throws -> Int8 { try next().scalar(type) }
  mutating func decode(_ type: Int16.Type) throws -> Int16 { try next().scalar(type) }
  mutating func decode(_ type: Int32.Type) throws -> Int32 { try next().scalar(type) }
  mutating func decode(_ type: Int64.Type) throws -> Int64 { try next().scalar(type) }
  mutating func decode(_ type: UInt.Type) throws -> UInt { try next().scalar(type) }
  mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next().scalar(type) }
  mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next().scalar(type) }
  mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next().scalar(type) }
  mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next().scalar(type) }

  mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
    -> KeyedDecodingContainer<NestedKey>
  { try next().container(keyedBy: type) }
  mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
    try next().unkeyedContainer()
  }
  mutating func superDecoder() throws -> any Decoder { try next() }
}

private struct SingleValueNodeContainer: SingleValueDecodingContainer {
  let decoder: YAMLNodeDecoder
  var codingPath: [any CodingKey] { decoder.codingPath }

  func decodeNil() -> Bool { decoder.node.isNull }
  func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: decoder) }
  func decode(_ type: Bool.Type) throws -> Bool { try decoder.scalar(type) }
  func decode(_ type: String.Type) throws -> String { try decoder.scalar(type) }
  func decode(_ type: Double.Type) throws -> Double { try decoder.scalar(type) }
  func decode(_ type: Float.Type) throws -> Float { try decoder.scalar(type) }
  func decode(_ type: Int.Type) throws -> Int { try decoder.scalar(type) }
  func decode(_ type: Int8.Type) throws -> Int8 { try decoder.scalar(type) }
  func decode(_ type: Int16.Type) throws -> Int16 { try decoder.scalar(type) }
  func decode(_ type: Int32.Type) throws -> Int32 { try decoder.scalar(type) }
  func decode(_ type: Int64.Type) throws -> Int64 { try decoder.scalar(type) }
  func decode(_ type: UInt.Type) throws -> UInt { try decoder.scalar(type) }
  func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.scalar(type) }
  func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.scalar(type) }
  func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.scalar(type) }
  func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.scalar(type) }
}
