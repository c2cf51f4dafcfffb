import CapstanTestKit
import Foundation
import Testing

@testable import CapstanCore
@testable import CapstanSignals

#if canImport(Glibc)
  import Glibc
#endif

/// Against a real redis-server the test starts on a free loopback port.
@Suite("redis signal", .serialized)
struct RedisQueueSignalTests {
  func signal(
    _ url: String, _ structure: RedisSignalSettings.Structure,
    _ measure: RedisSignalSettings.Measure = .depth, environment: [String: String] = [:],
    _ configure: (inout RedisSignalSettings) -> Void = { _ in }
  ) -> RedisQueueSignal {
    var settings = RedisSignalSettings(url: url, structure: structure, measure: measure, timeout: 1)
    configure(&settings)
    return RedisQueueSignal(name: "r", settings: settings, environment: environment)
  }

  /// Whole seconds, as the entries are written, so ages come out exact.
  let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
  var seconds: Int { Int(now.timeIntervalSince1970) }

  @Test("lists: LLEN, and the oldest entry's age from its JSON timestamp, in seconds or milliseconds")
  func lists() async throws {
    let redis = try RedisServer()
    #expect(await redis.ready())
    // LPUSH puts new jobs on the left; BRPOP takes the oldest from the right.
    try redis.cli("LPUSH", "jobs", #"{"id":1,"enqueued_at":\#(seconds - 90)}"#)
    try redis.cli("LPUSH", "jobs", #"{"id":2,"enqueued_at":\#((seconds - 30) * 1000)}"#)
    #expect(try await signal(redis.url, .list(key: "jobs")).read(now: now) == 2)
    #expect(try await signal(redis.url, .list(key: "jobs"), .oldestAge).read(now: now) == 90)
    #expect(
      try await signal(redis.url, .list(key: "jobs"), .oldestAge) { $0.popEnd = .left }.read(now: now) == 30)
    #expect(try await signal(redis.url, .list(key: "empty"), .oldestAge).read(now: now) == 0)
    try redis.cli("LPUSH", "plain", "not json")
    await #expect {
      try await signal(redis.url, .list(key: "plain"), .oldestAge).read(now: now)
    } throws: { error in
      (error as? SignalReadError)?.message.contains("is not JSON with a 'enqueued_at' field") == true
    }
  }

  @Test("sorted sets scored by enqueue time, and a key of the wrong type")
  func sortedSets() async throws {
    let redis = try RedisServer()
    #expect(await redis.ready())
    try redis.cli("ZADD", "delayed", String(seconds - 120), "a", String(seconds - 10), "b")
    #expect(try await signal(redis.url, .sortedSet(key: "delayed")).read(now: now) == 2)
    #expect(try await signal(redis.url, .sortedSet(key: "delayed"), .oldestAge).read(now: now) == 120)
    await #expect {
      try await signal(redis.url, .list(key: "delayed")).read(now: now)
    } throws: { error in
      (error as? SignalReadError)?.message.hasPrefix("Redis refused LLEN delayed: WRONGTYPE") == true
    }
  }

  @Test("streams: XLEN and the first ID's age; with a group, undelivered, pending, and the oldest of either")
  func streams() async throws {
    let redis = try RedisServer()
    #expect(await redis.ready())
    for offset in [300, 200, 100, 50, 10] {
      try redis.cli("XADD", "runs", "\((seconds - offset) * 1000)-0", "job", "x")
    }
    #expect(try await signal(redis.url, .stream(key: "runs", group: nil)).read(now: now) == 5)
    #expect(try await signal(redis.url, .stream(key: "runs", group: nil), .oldestAge).read(now: now) == 300)
    try redis.cli("XGROUP", "CREATE", "runs", "workers", "0")
    try redis.cli("XREADGROUP", "GROUP", "workers", "w1", "COUNT", "2", "STREAMS", "runs", ">")
    let group = RedisSignalSettings.Structure.stream(key: "runs", group: "workers")
    #expect(try await signal(redis.url, group).read(now: now) == 3)
    #expect(try await signal(redis.url, group, .pending).read(now: now) == 2)
    #expect(try await signal(redis.url, group, .oldestAge).read(now: now) == 300)
    try redis.cli("XACK", "runs", "workers", "\((seconds - 300) * 1000)-0", "\((seconds - 200) * 1000)-0")
    #expect(try await signal(redis.url, group, .oldestAge).read(now: now) == 100)
    await #expect {
      try await signal(redis.url, .stream(key: "runs", group: "nobody")).read(now: now)
    } throws: { error in
      (error as? SignalReadError)?.message == "stream runs has no consumer group nobody"
    }
  }

  @Test("credentials: none, wrong, and right from the environment")
  func credentials() async throws {
    let redis = try RedisServer(password: "s3cret")
    #expect(await redis.ready())
    try redis.cli("LPUSH", "jobs", "a")
    await #expect {
      try await signal(redis.url, .list(key: "jobs")).read(now: now)
    } throws: { error in
      (error as? SignalReadError)?.message.contains("NOAUTH") == true
    }
    await #expect {
      try await signal("redis://:wrong@127.0.0.1:\(redis.port)/0", .list(key: "jobs")).read(now: now)
    } throws: { error in
      (error as? SignalReadError)?.message.contains("Redis refused AUTH") == true
    }
    #expect(
      try await signal(redis.url, .list(key: "jobs"), environment: ["CAPSTAN_TEST_REDIS_PASSWORD": "s3cret"])
      {
        $0.passwordEnv = "CAPSTAN_TEST_REDIS_PASSWORD"
      }.read(now: now) == 1)
    await #expect {
      try await signal(redis.url, .list(key: "jobs")) { $0.passwordEnv = "CAPSTAN_TEST_REDIS_PASSWORD" }.read(
        now: now)
    } throws: { error in
      (error as? SignalReadError)?.message
        == "the environment variable CAPSTAN_TEST_REDIS_PASSWORD named by password_env is not set"
    }
  }

  @Test("a server killed mid-run is a missing signal; the same signal reconnects when it is back")
  func killedAndBack() async throws {
    let redis = try RedisServer()
    #expect(await redis.ready())
    try redis.cli("RPUSH", "jobs", "a", "b", "c")
    let depth = signal(redis.url, .list(key: "jobs"))
    #expect(try await depth.read(now: now) == 3)
    await redis.stop()
    await #expect {
      try await depth.read(now: now)
    } throws: { error in
      let message = (error as? SignalReadError)?.message ?? ""
      return message.contains("cannot reach Redis") || message.contains("did not answer")
    }
    try redis.start()
    #expect(await redis.ready())
    try redis.cli("RPUSH", "jobs", "d")
    #expect(try await depth.read(now: now) == 1)
  }

  @Test("a server that accepts but never answers is a timeout", .timeLimit(.minutes(10)))
  func silent() async throws {
    let (descriptor, port) = try loopbackSocket(listen: 8)
    defer { close(descriptor) }
    await #expect(throws: SignalReadError.self) {
      try await signal("redis://127.0.0.1:\(port)/0", .list(key: "jobs")).read(now: now)
    }
  }

  @Test("redis settings are validated at their position")
  func settings() throws {
    let base = "processes: {w: {scaling: {metric: q, target: 1, min: 1, max: 2}}}\nsignals:\n"
    let policy = try PolicyLoader.load(
      yaml: base
        + "  q: {redis: {url: 'redis://cache:6379/2', stream: runs, group: workers, measure: pending}}\n",
      file: "p.yaml"
    ).policy
    #expect(
      policy.signals.first?.source
        == .redis(
          .init(
            url: "redis://cache:6379/2", structure: .stream(key: "runs", group: "workers"), measure: .pending)
        ))
    #expect {
      try PolicyLoader.load(
        yaml: base + "  q: {redis: {url: 'redis://c', list: jobs, measure: pending}}\n", file: "p.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.description
        == "p.yaml:3:54: error: measure is 'pending': here use depth or oldest_age"
    }
    #expect {
      try PolicyLoader.load(
        yaml: base + "  q: {redis: {url: 'redis://c', list: jobs, stream: runs}}\n", file: "p.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.message.contains("name one of list:, stream: or sorted_set:")
        == true
    }
  }
}
