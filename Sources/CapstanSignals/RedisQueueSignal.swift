import CHiredis
import CapstanCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A queue held in Redis, over hiredis: a list, a stream (with or without a consumer group), or
/// a sorted set scored by enqueue time. One connection per signal, reused, and dropped after any
/// failure so the next read reconnects: a dead server is a missing signal, never a crash.
public struct RedisQueueSignal: SignalReader {
  public let name: String
  public let settings: RedisSignalSettings
  private let connection: RedisConnection

  /// `environment` is where `password_env` is looked up.
  public init(name: String, settings: RedisSignalSettings, environment: [String: String]) {
    self.name = name
    self.settings = settings
    self.connection = RedisConnection(settings: settings, environment: environment)
  }

  public var timeout: TimeInterval { settings.timeout }

  public func read(now: Date) async throws -> Double {
    do {
      return try connection.withConnection { redis in try measure(redis, now: now) }
    } catch let failure as RedisConnection.Failure {
      throw SignalReadError(signal: name, failure.message)
    }
  }

  private func measure(_ redis: RedisConnection.Session, now: Date) throws -> Double {
    switch (settings.structure, settings.measure) {
    case (.list(let key), .depth):
      return Double(try redis.integer(["LLEN", key]))
    case (.list(let key), _):
      guard let entry = try redis.string(["LINDEX", key, settings.popEnd == .right ? "-1" : "0"]) else {
        return 0
      }
      return age(since: try enqueueTime(entry, key: key), now: now)
    case (.sortedSet(let key), .depth):
      return Double(try redis.integer(["ZCARD", key]))
    case (.sortedSet(let key), _):
      let lowest = try redis.array(["ZRANGE", key, "0", "0", "WITHSCORES"])
      guard lowest.count == 2, let score = Double(lowest[1]) else { return 0 }
      return age(since: score > 1e11 ? score / 1000 : score, now: now)
    case (.stream(let key, nil), .depth):
      return Double(try redis.integer(["XLEN", key]))
    case (.stream(let key, nil), _):
      let first = try redis.firstIDs(["XRANGE", key, "-", "+", "COUNT", "1"])
      return first.first.map { age(since: streamTime($0), now: now) } ?? 0
    case (.stream(let key, let group?), let measure):
      let info = try redis.groupInfo(key: key, group: group)
      switch measure {
      case .depth: return Double(info.lag)
      case .pending: return Double(info.pending)
      case .oldestAge:
        var oldest: [Double] = []
        if info.pending > 0, let id = try redis.oldestPending(key: key, group: group) {
          oldest.append(streamTime(id))
        }
        if let id = try redis.firstIDs(["XRANGE", key, "(" + info.lastDelivered, "+", "COUNT", "1"]).first {
          oldest.append(streamTime(id))
        }
        return oldest.min().map { age(since: $0, now: now) } ?? 0
      }
    }
  }

  private func age(since seconds: Double, now: Date) -> Double { max(0, now.timeIntervalSince1970 - seconds) }

  /// Stream IDs are `<milliseconds>-<sequence>`: they carry the time the entry was added.
  private func streamTime(_ id: String) -> Double {
    (Double(id.split(separator: "-").first ?? "") ?? 0) / 1000
  }

  private func enqueueTime(_ entry: String, key: String) throws -> Double {
    guard let object = try? JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any],
      let value = object[settings.timestampField]
    else {
      throw RedisConnection.Failure(
        message:
          "the oldest entry of list \(key) is not JSON with a '\(settings.timestampField)' field (set timestamp_field)"
      )
    }
    let seconds: Double? = (value as? NSNumber)?.doubleValue ?? (value as? String).flatMap(Double.init)
    guard let seconds else {
      throw RedisConnection.Failure(
        message: "'\(settings.timestampField)' in the oldest entry of list \(key) is not a number")
    }
    return seconds > 1e11 ? seconds / 1000 : seconds
  }
}

/// One hiredis connection, opened on demand and closed after any failure.
final class RedisConnection: @unchecked Sendable {
  struct Failure: Error {
    var message: String
  }

  let settings: RedisSignalSettings
  let environment: [String: String]
  private let lock = NSLock()
  private var context: UnsafeMutablePointer<redisContext>?

  init(settings: RedisSignalSettings, environment: [String: String]) {
    self.settings = settings
    self.environment = environment
  }

  deinit { if let context { redisFree(context) } }

  func withConnection<T>(_ body: (Session) throws -> T) throws -> T {
    try lock.withLock {
      let connected = try context ?? connect()
      context = connected
      do {
        return try body(Session(context: connected, key: settings.url))
      } catch let failure as Failure {
        // A reply error (WRONGTYPE, NOAUTH) leaves the connection usable; I/O errors do not.
        if connected.pointee.err != 0 {
          redisFree(context)
          context = nil
        }
        throw failure
      }
    }
  }

  private func connect() throws -> UnsafeMutablePointer<redisContext> {
    guard let components = URLComponents(string: settings.url), let host = components.host else {
      throw Failure(message: "\(settings.url) is not a redis:// URL")
    }
    let port = components.port ?? 6379
    let seconds = Int(settings.timeout)
    let timeout = timeval(tv_sec: seconds, tv_usec: Int((settings.timeout - Double(seconds)) * 1e6))
    guard let context = redisConnectWithTimeout(host, Int32(port), timeout) else {
      throw Failure(message: "cannot reach Redis at \(host):\(port): out of memory")
    }
    if context.pointee.err != 0 {
      let reason = Session.errorText(context)
      redisFree(context)
      throw Failure(message: "cannot reach Redis at \(host):\(port): \(reason)")
    }
    redisSetTimeout(context, timeout)
    let session = Session(context: context, key: settings.url)
    do {
      var password = components.password?.removingPercentEncoding
      if let variable = settings.passwordEnv {
        guard let value = environment[variable], !value.isEmpty else {
          throw Failure(message: "the environment variable \(variable) named by password_env is not set")
        }
        password = value
      }
      if let password {
        let user = components.user?.removingPercentEncoding
        _ = try session.status(user.map { ["AUTH", $0, password] } ?? ["AUTH", password])
      }
      let database = components.path.split(separator: "/").first.map(String.init) ?? "0"
      if database != "0" { _ = try session.status(["SELECT", database]) }
    } catch {
      redisFree(context)
      throw error
    }
    return context
  }

  struct Session {
    let context: UnsafeMutablePointer<redisContext>
    let key: String

    static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
      withUnsafeBytes(of: context.pointee.errstr) { bytes in
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
      }
    }

    /// Runs one command; the reply is handed to `read` and freed after it.
    func command<T>(_ argv: [String], _ read: (UnsafeMutablePointer<redisReply>) throws -> T) throws -> T {
      var pointers = argv.map { strdup($0) }
      defer { pointers.forEach { free($0) } }
      let lengths = argv.map { $0.utf8.count }
      let raw = pointers.withUnsafeMutableBufferPointer { buffer in
        buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { constant in
          redisCommandArgv(context, Int32(argv.count), constant.baseAddress, lengths)
        }
      }
      guard let reply = raw?.assumingMemoryBound(to: redisReply.self) else {
        throw Failure(message: "Redis did not answer \(argv[0]): \(Self.errorText(context))")
      }
      defer { freeReplyObject(reply) }
      if reply.pointee.type == REDIS_REPLY_ERROR {
        throw Failure(
          message: "Redis refused \(argv.prefix(2).joined(separator: " ")): \(text(reply) ?? "error")")
      }
      return try read(reply)
    }

    func text(_ reply: UnsafeMutablePointer<redisReply>) -> String? {
      guard let pointer = reply.pointee.str else { return nil }
      return String(
        decoding: UnsafeRawBufferPointer(start: pointer, count: Int(reply.pointee.len)), as: UTF8.self)
    }

    func integer(_ argv: [String]) throws -> Int {
      try command(argv) { reply in
        guard reply.pointee.type == REDIS_REPLY_INTEGER else {
          throw Failure(message: "Redis answered \(argv[0]) with something other than a number")
        }
        return Int(reply.pointee.integer)
      }
    }

    func status(_ argv: [String]) throws -> String? { try command(argv) { text($0) } }

    func string(_ argv: [String]) throws -> String? {
      try command(argv) { reply in reply.pointee.type == REDIS_REPLY_NIL ? nil : text(reply) }
    }

    func array(_ argv: [String]) throws -> [String] {
      try command(argv) { reply in
        guard reply.pointee.type == REDIS_REPLY_ARRAY else { return [] }
        return (0..<reply.pointee.elements).compactMap { reply.pointee.element[$0].flatMap(text) }
      }
    }

    /// The IDs of stream entries from XRANGE: each entry is [id, [field, value, ...]].
    func firstIDs(_ argv: [String]) throws -> [String] {
      try command(argv) { reply in
        guard reply.pointee.type == REDIS_REPLY_ARRAY else { return [] }
        return (0..<reply.pointee.elements).compactMap { index in
          reply.pointee.element[index].flatMap { entry in
            entry.pointee.elements > 0 ? entry.pointee.element[0].flatMap(text) : nil
          }
        }
      }
    }

    struct GroupInfo {
      var lag: Int
      var pending: Int
      var lastDelivered: String
    }

    /// From XINFO GROUPS: a flat list of field names and values per group.
    func groupInfo(key: String, group: String) throws -> GroupInfo {
      try command(["XINFO", "GROUPS", key]) { reply in
        for index in 0..<reply.pointee.elements {
          guard let entry = reply.pointee.element[index] else { continue }
          var fields: [String: UnsafeMutablePointer<redisReply>] = [:]
          var position = 0
          while position + 1 < entry.pointee.elements {
            if let name = entry.pointee.element[position].flatMap(text),
              let value = entry.pointee.element[position + 1]
            {
              fields[name] = value
            }
            position += 2
          }
          guard fields["name"].flatMap(text) == group else { continue }
          guard let lag = fields["lag"], lag.pointee.type == REDIS_REPLY_INTEGER else {
            throw Failure(
              message: "Redis does not report the lag of group \(group) on \(key): it needs Redis 7 or later")
          }
          return GroupInfo(
            lag: Int(lag.pointee.integer), pending: Int(fields["pending"]?.pointee.integer ?? 0),
            lastDelivered: fields["last-delivered-id"].flatMap(text) ?? "0-0")
        }
        throw Failure(message: "stream \(key) has no consumer group \(group)")
      }
    }

    /// XPENDING's summary: [count, smallest id, greatest id, consumers].
    func oldestPending(key: String, group: String) throws -> String? {
      try command(["XPENDING", key, group]) { reply in
        reply.pointee.elements >= 2 ? reply.pointee.element[1].flatMap(text) : nil
      }
    }
  }
}
