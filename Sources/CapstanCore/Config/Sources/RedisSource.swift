import Foundation

// The `redis` signal source: a queue in redis. Its settings, its YAML form and its
// validation; the reader is in CapstanSignals. Registered in `SignalSourceKind.all`.

/// A queue held in Redis: a list (Sidekiq, RQ), a stream with or without a consumer group, or a
/// sorted set scored by enqueue time.
public struct RedisSignalSettings: Sendable, Equatable, Codable {
  public enum Structure: Sendable, Equatable, Codable {
    case list(key: String)
    case stream(key: String, group: String?)
    case sortedSet(key: String)
  }

  public enum Measure: String, Sendable, Codable, CaseIterable {
    /// Entries waiting: LLEN, ZCARD, XLEN, or a group's undelivered entries.
    case depth
    /// A group's entries delivered but not acknowledged.
    case pending
    /// Seconds since the oldest waiting entry was enqueued; 0 when none waits.
    case oldestAge = "oldest_age"
  }

  public enum ListEnd: String, Sendable, Codable, CaseIterable {
    case left, right
  }

  /// redis://[user:password@]host:port/db
  public var url: String
  /// An environment variable holding the password, so no secret sits in the file.
  public var passwordEnv: String? = nil
  public var structure: Structure
  public var measure: Measure = .depth
  /// The end of a list consumers pop from, where the oldest entry is (LPUSH + BRPOP: right).
  public var popEnd: ListEnd = .right
  /// The JSON field of a list entry holding its enqueue time, in seconds or milliseconds.
  public var timestampField: String = "enqueued_at"
  public var timeout: TimeInterval = 2

}

struct RawRedisSource: Decodable {
  var url, passwordEnv, list, stream, group, sortedSet, measure, popEnd, timestampField, timeout: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case url, list, stream, group, measure, timeout
    case passwordEnv = "password_env", sortedSet = "sorted_set"
    case popEnd = "pop_end", timestampField = "timestamp_field"
  }
}

extension PolicyValidator {
  func validateRedis(_ raw: RawRedisSource, name: RawScalar) -> SignalSource? {
    guard let url = raw.url, url.text.hasPrefix("redis://") else {
      sink.error(
        raw.url?.location ?? name.location,
        "signal '\(name.text)' reads Redis but its url is \(raw.url.map { "'\($0.text)'" } ?? "missing"): write redis://[user:password@]host:port/db"
      )
      return nil
    }
    let keys = [raw.list, raw.stream, raw.sortedSet].compactMap { $0 }
    guard keys.count == 1 else {
      sink.error(
        name.location,
        "signal '\(name.text)' reads Redis: name one of list:, stream: or sorted_set: (the key)")
      return nil
    }
    let structure: RedisSignalSettings.Structure
    var allowed: [RedisSignalSettings.Measure] = [.depth, .oldestAge]
    if let list = raw.list {
      structure = .list(key: list.text)
    } else if let stream = raw.stream {
      structure = .stream(key: stream.text, group: raw.group?.text)
      if raw.group != nil { allowed.append(.pending) }
    } else if let sortedSet = raw.sortedSet {
      structure = .sortedSet(key: sortedSet.text)
    } else {
      return nil  // one of the three is there: counted above
    }
    if let group = raw.group, raw.stream == nil {
      sink.error(group.location, "group applies to a stream: remove it, or read stream: KEY")
    }
    var measure = RedisSignalSettings.Measure.depth
    if let rawMeasure = raw.measure {
      guard let value = RedisSignalSettings.Measure(rawValue: rawMeasure.text), allowed.contains(value) else {
        sink.error(
          rawMeasure.location,
          "measure is '\(rawMeasure.text)': here use \(allowed.map(\.rawValue).joined(separator: " or "))\(raw.stream != nil && raw.group == nil ? " (pending needs a group)" : "")"
        )
        return nil
      }
      measure = value
    }
    guard
      let popEnd = choice(
        raw.popEnd, "pop_end", default: RedisSignalSettings.ListEnd.right,
        hint: " (the end consumers pop from)")
    else { return nil }
    return .redis(
      RedisSignalSettings(
        url: url.text, passwordEnv: raw.passwordEnv?.text, structure: structure, measure: measure,
        popEnd: popEnd,
        timestampField: raw.timestampField?.text ?? "enqueued_at",
        timeout: raw.timeout.flatMap { timeout($0) } ?? 2))
  }
}
