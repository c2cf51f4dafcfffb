import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The shipped example worker (examples/rate-limited-worker/worker.py) under the real binary.
@Suite("capstan run: each worker's share of the rate limit, end to end", .serialized)
struct SharesEndToEndTests {
  static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("examples/rate-limited-worker")

  /// The calls every worker made: (time, replica).
  static func calls(_ file: URL) -> [(time: Double, replica: String)] {
    let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { line in
      let parts = line.split(separator: " ")
      guard parts.count == 2, let time = Double(parts[0]) else { return nil }
      return (time, String(parts[1]))
    }
  }

  @Test("workers that read their share stay under the provider's limit while the replicas go 1 → 4 → 1")
  func workersStayUnderTheLimit() async throws {
    let folder = try scratchDirectory("shares")
    let spool = folder.appendingPathComponent("spool")
    try FileManager.default.createDirectory(at: spool, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
      at: Self.example.appendingPathComponent("worker.py"), to: folder.appendingPathComponent("worker.py"))
    let callsFile = folder.appendingPathComponent("calls.log")
    let policy = try String(contentsOf: Self.example.appendingPathComponent("policy.yaml"), encoding: .utf8)
      .replacingOccurrences(of: "/tmp/capstan-shares-calls.log", with: callsFile.path)
    try policy.write(to: folder.appendingPathComponent("policy.yaml"), atomically: true, encoding: .utf8)

    let capstan = try RunningCapstan(
      policy: folder.appendingPathComponent("policy.yaml"),
      stateDirectory: folder.appendingPathComponent("state"))
    let shareFile = folder.appendingPathComponent("state/shares/caller.json")
    func share() -> [String: Any]? {
      (try? Data(contentsOf: shareFile)).flatMap {
        try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
      }
    }
    // One replica: the whole 600 × 0.8 = 480 a minute, and 480 × 2 s / 60 = 16 in flight.
    #expect(await eventually(timeout: 15) { share()?["replicas"] as? Int == 1 })
    #expect(
      share()?["requests_per_minute"] as? Double == 480 && share()?["concurrent_requests"] as? Int == 16)
    #expect(await eventually(timeout: 15) { Self.calls(callsFile).count >= 5 })

    // Eight jobs at 2 a replica: four replicas, 120 a minute each.
    for index in 0..<8 { try Data().write(to: spool.appendingPathComponent("\(index).job")) }
    #expect(await eventually(timeout: 15) { share()?["replicas"] as? Int == 4 })
    #expect(share()?["requests_per_minute"] as? Double == 120)
    #expect(await eventually(timeout: 15) { Set(Self.calls(callsFile).map(\.replica)).count == 4 })
    let served = await capstan.get("/shares")
    #expect(served?.status == 200 && served?.body.contains(#""requests_per_minute":120"#) == true)
    try await Task.sleep(nanoseconds: 4_000_000_000)

    // Empty again: back to one replica once the window has passed and the drained ones are gone.
    for index in 0..<8 {
      try FileManager.default.removeItem(at: spool.appendingPathComponent("\(index).job"))
    }
    #expect(await eventually(timeout: 20) { share()?["replicas"] as? Int == 1 })
    try await Task.sleep(nanoseconds: 3_000_000_000)
    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)

    // Every 5-second window, whichever replicas were calling: at most the planned 480 a minute
    // (40 in 5 s), plus one call per replica that may have started its interval just before the
    // window: never past the provider's 600 a minute (50).
    let times = Self.calls(callsFile).map(\.time).sorted()
    #expect(times.count > 40)
    var start = 0
    var busiest = 0
    for end in times.indices {
      while times[end] - times[start] >= 5 { start += 1 }
      busiest = max(busiest, end - start + 1)
    }
    #expect(busiest <= 40 + 4, "the busiest 5 s held \(busiest) calls")
    #expect(Set(Self.calls(callsFile).map(\.replica)) == ["0", "1", "2", "3"])
    try? FileManager.default.removeItem(at: folder)
  }
}
