import CapstanTestKit
import Foundation
import Testing

/// `capstan record`, then `capstan replay` on what it wrote: the real binary, real sources.
@Suite("capstan record, end to end", .serialized)
struct RecordEndToEndTests {
  func capstan(_ arguments: [String], in folder: URL) async throws -> (
    status: Int32, stdout: String, stderr: String
  ) {
    let process = Process()
    process.executableURL = try CapstanBinary.url()
    process.arguments = arguments
    process.currentDirectoryURL = folder
    let out = folder.appendingPathComponent("out-\(UUID().uuidString.prefix(6))")
    let err = folder.appendingPathComponent("err-\(UUID().uuidString.prefix(6))")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    try process.run()
    _ = await eventually(timeout: 60) { !process.isRunning }
    return (
      process.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "",
      (try? String(contentsOf: err, encoding: .utf8)) ?? ""
    )
  }

  @Test("live: rows at the interval for the duration, then a replay of them")
  func live() async throws {
    let folder = try scratchDirectory("record")
    defer { try? FileManager.default.removeItem(at: folder) }
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("spool"), withIntermediateDirectories: true)
    for index in 0..<25 { try Data().write(to: folder.appendingPathComponent("spool/\(index).job")) }
    try Data(
      """
      signals:
        queue_depth: {directory: {path: spool, glob: "*.job"}}
      processes:
        worker:
          class: batch
          scaling: {metric: queue_depth, target: 10, min: 0, max: 5}
      autoscaling:
        worker: {scale_up: {stabilization_window: 0s}}
      """.utf8
    ).write(to: folder.appendingPathComponent("policy.yaml"))
    let recorded = try await capstan(
      ["record", "policy.yaml", "--out", "day.csv", "--duration", "3s", "--interval", "1s"], in: folder)
    #expect(recorded.status == 0, "\(recorded.stderr)")
    let rows = try String(contentsOf: folder.appendingPathComponent("day.csv"), encoding: .utf8).split(
      separator: "\n")
    #expect(rows.first == "timestamp,queue_depth")
    #expect(rows.count >= 4)
    #expect(rows.dropFirst().allSatisfy { $0.hasSuffix(",25") })
    let replayed = try await capstan(
      ["replay", "policy.yaml", "--metrics", "day.csv", "--interval", "1s"], in: folder)
    #expect(replayed.status == 0, "\(replayed.stderr)")
    #expect(replayed.stdout.contains("scale_up         0 -> 3"))

    // A second recording into the same file appends; one with other columns is refused.
    try Data(
      "signals:\n  other: {directory: {path: spool}}\nprocesses:\n  w: {scaling: {metric: other, target: 1, max: 2}}\n"
        .utf8
    )
    .write(to: folder.appendingPathComponent("other.yaml"))
    let refused = try await capstan(
      ["record", "other.yaml", "--out", "day.csv", "--duration", "1s"], in: folder)
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("already holds a recording with the columns 'timestamp,queue_depth'"))
  }

  @Test("backfill: Prometheus signals by range query; the others' columns empty, with a warning")
  func backfill() async throws {
    let server = try PrometheusServer()
    #expect(await server.ready())
    try await Task.sleep(nanoseconds: 3_000_000_000)
    let folder = try scratchDirectory("backfill")
    defer { try? FileManager.default.removeItem(at: folder) }
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("spool"), withIntermediateDirectories: true)
    try Data(
      """
      signals:
        targets_up: {prometheus: {url: '\(server.url)', query: 'scalar(count(up))'}}
        queue_depth: {directory: {path: spool}}
      processes:
        worker:
          scaling: {metric: queue_depth, target: 10, min: 1, max: 5}
      autoscaling:
        worker:
          scale_up: {conditions: [{metric: targets_up > 0}]}
      """.utf8
    ).write(to: folder.appendingPathComponent("policy.yaml"))
    let to = Int(Date().timeIntervalSince1970)
    let recorded = try await capstan(
      [
        "record", "policy.yaml", "--out", "past.csv", "--from", String(to - 2), "--to", String(to),
        "--interval", "1s",
      ],
      in: folder)
    #expect(recorded.status == 0, "\(recorded.stderr)")
    #expect(recorded.stderr.contains("signal 'queue_depth' is not from Prometheus and cannot be backfilled"))
    let rows = try String(contentsOf: folder.appendingPathComponent("past.csv"), encoding: .utf8).split(
      separator: "\n")
    #expect(rows.first == "timestamp,targets_up,queue_depth")
    #expect(rows.count == 4)
    #expect(rows.dropFirst().allSatisfy { $0.hasSuffix(",1,") })
    let replayed = try await capstan(
      ["replay", "policy.yaml", "--metrics", "past.csv", "--interval", "1s"], in: folder)
    #expect(replayed.status == 0, "\(replayed.stderr)")
    #expect(replayed.stdout.contains("scale_up_rule"))
  }
}
