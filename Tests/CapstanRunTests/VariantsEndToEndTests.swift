import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// One queue-fed process served by two local variants: `cheap` ($0.50 an hour for 1 unit of
/// capacity, at most 3) and `fast` ($2 an hour for 2 units: $1 a unit, at most 2).
@Suite("Variants under capstan run", .serialized)
struct VariantsEndToEndTests {
  @Test("the cheap variant fills first and is kept longest, as the audit log shows")
  func cheapFirstAndLast() async throws {
    let folder = try scratchDirectory("variants")
    let spool = folder.appendingPathComponent("spool")
    try FileManager.default.createDirectory(at: spool, withIntermediateDirectories: true)
    try writeScript(folder.appendingPathComponent("worker.sh"), "while true; do sleep 0.1; done")
    let policy = folder.appendingPathComponent("policy.yaml")
    try Data(
      """
      controller: {interval: 1s}
      signals:
        queue: {directory: {path: spool, glob: "*.job"}}
      processes:
        workers:
          class: batch
          scaling: {metric: queue, target: 5, min: 1, max: 8}
          variants:
            fast: {cost_per_hour_usd: 2, capacity: 2, max: 2, local: {command: [./worker.sh]}}
            cheap: {cost_per_hour_usd: 0.5, capacity: 1, max: 3, local: {command: [./worker.sh]}}
      autoscaling:
        workers:
          scale_up: {stabilization_window: 0s}
          scale_down: {stabilization_window: 2s}
      """.utf8
    ).write(to: policy)
    let capstan = try RunningCapstan(
      policy: policy, stateDirectory: folder.appendingPathComponent("state"), extraArguments: [])
    func current(_ variant: String) async -> Double? {
      await capstan.metric(#"capstan_replicas{process="workers.\#(variant)",state="current"}"#)
    }
    func mix() async -> [Double?] { [await current("cheap"), await current("fast")] }
    // min 1 of capacity: one cheap replica, none of the fast.
    #expect(await eventually(timeout: 30) { await current("cheap") == 1 }, "\(capstan.log)")
    #expect(await current("fast") == 0)

    // 35 jobs at 5 a unit: 7 units, the cheap variant's 3 and two fast replicas' 4. Written
    // into a folder of their own and renamed onto the empty spool, so no tick reads them half
    // written.
    let incoming = folder.appendingPathComponent("incoming")
    try FileManager.default.createDirectory(at: incoming, withIntermediateDirectories: true)
    for index in 0..<35 { try Data().write(to: incoming.appendingPathComponent("\(index).job")) }
    #expect(rename(incoming.path, spool.path) == 0)
    #expect(
      await eventually(timeout: 30) { await mix() == [3, 2] }, "\(capstan.log)")
    let ups = capstan.records(event: "scale_up")
    #expect(ups.first?["process"] as? String == "workers.cheap", "\(ups)")
    // The fast variant grows only in a fill that took the cheap one to its max.
    let growth = try #require(ups.first { $0["process"] as? String == "workers.fast" })
    let detail = growth["detail"] as? String ?? ""
    #expect(detail.contains("variants filled cheapest per unit of capacity first: cheap "), "\(growth)")
    #expect(detail.contains(#/cheap (\d+ -> )?3 \(/#), "\(growth)")

    // The queue empties at once (a new, empty spool): the fast replicas are given up first,
    // and one cheap replica stays at min.
    try FileManager.default.moveItem(at: spool, to: folder.appendingPathComponent("done"))
    try FileManager.default.createDirectory(at: spool, withIntermediateDirectories: true)
    #expect(await eventually(timeout: 30) { await mix() == [1, 0] }, "\(capstan.log)")
    let downs = capstan.records(event: "scale_down")
    #expect(downs.map { $0["process"] as? String } == ["workers.fast", "workers.cheap"], "\(downs)")
    #expect(downs.map { $0["to"] as? Int } == [0, 1], "\(downs)")

    capstan.signal(SIGTERM)
    #expect(await capstan.waitForExit() == 0)
    try? FileManager.default.removeItem(at: folder)
  }
}
