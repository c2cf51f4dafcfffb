import CapstanTestKit
import Foundation
import Testing

/// End to end: the real `capstan` binary, as the README runs it.
@Suite("capstan command line", .serialized)
struct CommandLineTests {
  static let example = ["replay", "policies/llm-serving.yaml", "--metrics", "examples/llm-day.csv"]

  @Test("validate accepts both YAML blocks of seed 000, each saved alone")
  func validateSeeds() throws {
    let result = try runCapstan([
      "validate", "Tests/CapstanCoreTests/Fixtures/seed-000-processes.yaml",
      "Tests/CapstanCoreTests/Fixtures/seed-000-autoscaling.yaml",
    ])
    #expect(result.status == 0)
    #expect(result.stdout.contains("seed-000-processes.yaml: valid, 4 targets"))
    #expect(
      result.stdout.contains("inference_workers  interactive, min 1, max 8, ceiling 8: max_instances is 8"))
  }

  @Test("validate prints every error as FILE:LINE:COLUMN: error: MESSAGE and exits 1")
  func validateErrors() throws {
    let file = "Tests/CapstanCoreTests/Fixtures/invalid/units.yaml"
    let result = try runCapstan(["validate", file])
    #expect(result.status == 1)
    let lines = result.stderr.split(separator: "\n").map(String.init)
    #expect(lines.count == 4)
    #expect(lines.allSatisfy { $0.hasPrefix("\(file):") && $0.contains(": error: ") })
    #expect(
      lines.contains("\(file):19:19: error: '300' has no unit: write a duration such as 300s, 10m or 1h"))
  }

  @Test("validate names a missing file")
  func validateMissingFile() throws {
    let result = try runCapstan(["validate", "no-such-policy.yaml"])
    #expect(result.status == 1)
    #expect(result.stderr == "no-such-policy.yaml: error: cannot read the policy file: no such file\n")
  }

  @Test("the README's replay matches the reviewed golden output")
  func replayGoldenText() throws {
    let result = try runCapstan(Self.example)
    #expect(result.status == 0)
    let golden = try String(contentsOf: goldenFolder.appendingPathComponent("llm-day.txt"), encoding: .utf8)
    #expect(result.stdout == golden)
  }

  @Test("--format json prints the same summary as one JSON object")
  func replayGoldenJSON() throws {
    let result = try runCapstan(Self.example + ["--format", "json"])
    #expect(result.status == 0)
    let golden = try String(contentsOf: goldenFolder.appendingPathComponent("llm-day.json"), encoding: .utf8)
    #expect(result.stdout == golden)
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    #expect((object?["processes"] as? [Any])?.count == 2)
  }

  @Test("same input, same output, byte for byte, audit log included")
  func deterministic() throws {
    let first = temporaryFile("a.jsonl")
    let second = temporaryFile("b.jsonl")
    defer {
      try? FileManager.default.removeItem(at: first)
      try? FileManager.default.removeItem(at: second)
    }
    let a = try runCapstan(Self.example + ["--audit-log", first.path])
    let b = try runCapstan(Self.example + ["--audit-log", second.path])
    #expect(a.stdout == b.stdout)
    let logA = try Data(contentsOf: first)
    #expect(logA == (try Data(contentsOf: second)))
    let lines = String(decoding: logA, as: UTF8.self).split(separator: "\n")
    #expect(lines.count > 100)
    for line in lines {
      let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      #expect(record["mode"] as? String == "replay")
      for key in ["time", "process", "event", "reason", "detail", "signals"] {
        #expect(record[key] != nil, "\(key) missing")
      }
    }
  }

  @Test(
    "a per-replica signal with no replicas column in the recording is replayed as recorded, with a warning")
  func perReplicaWithoutColumn() throws {
    let recording = temporaryFile("no-replicas.csv")
    defer { try? FileManager.default.removeItem(at: recording) }
    try "timestamp,gpu_utilization\n2023-11-16T00:00:00Z,50\n".write(
      to: recording, atomically: true, encoding: .utf8)
    let policy = try policyFile(
      "per-replica.yaml",
      """
      processes:
        model: {scaling: {metric: gpu_utilization, target: 70%, min: 1, max: 4}}
      """)
    defer { try? FileManager.default.removeItem(at: policy) }
    let result = try runCapstan(["replay", policy.path, "--metrics", recording.path])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(
      result.stderr.contains(
        "warning: signal 'gpu_utilization' is measured per replica of model, but the recording has no model.replicas column"
      ), "\(result.stderr)")
  }

  @Test("the audit log is appended to, and a torn last line is left as it is")
  func auditAppends() throws {
    let log = temporaryFile("audit.jsonl")
    defer { try? FileManager.default.removeItem(at: log) }
    try Data(#"{"time":"2023-11-16T00:00:00Z","event":"scale_up","torn"#.utf8).write(to: log)
    let result = try runCapstan(Self.example + ["--audit-log", log.path])
    #expect(result.status == 0)
    let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
    #expect(lines.first == #"{"time":"2023-11-16T00:00:00Z","event":"scale_up","torn"#)
    #expect(lines.dropFirst().allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
  }

  @Test(
    "a disk that fills mid-record leaves only whole records: the write that failed is cut back, and the command fails saying why"
  )
  func fullDiskLeavesWholeRecords() throws {
    let log = temporaryFile("audit.jsonl")
    defer { try? FileManager.default.removeItem(at: log) }
    // The file-size limit stands in for a full disk: a write past it writes what fits, then
    // fails (EFBIG), as a write to a full disk does (ENOSPC). SIGXFSZ is ignored so the write
    // returns its error instead of killing the process.
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments =
      [
        "-c", #"trap "" XFSZ; ulimit -f 8; exec "$0" "$@" > /dev/null 2> "$LOG.err""#,
        try CapstanBinary.url().path,
      ] + Self.example + ["--audit-log", log.path]
    process.environment = ["LOG": log.path]
    process.currentDirectoryURL = repositoryRoot
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 1)
    let errors = try String(contentsOfFile: log.path + ".err", encoding: .utf8)
    try? FileManager.default.removeItem(atPath: log.path + ".err")
    #expect(errors.contains("write failed: File too large"), "\(errors)")
    let text = try String(contentsOf: log, encoding: .utf8)
    #expect(!text.isEmpty && text.hasSuffix("\n"))
    let lines = text.split(separator: "\n")
    #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
  }

  @Test(
    "a bad row deep in a streamed recording stops the replay at its line; the ticks before it keep their records"
  )
  func badRowMidStream() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "stream-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    // The example day, whose first hours scale, then a row with a word where a number goes.
    var lines = try String(contentsOfFile: "examples/llm-day.csv", encoding: .utf8).split(separator: "\n")
    let bad = 1 + 600
    let cells = lines[bad].split(separator: ",", omittingEmptySubsequences: false)
    lines[bad] = cells[0] + ",lots" + cells.dropFirst(2).map { "," + $0 }.joined()
    let metrics = directory.appendingPathComponent("day.csv")
    try (lines.joined(separator: "\n") + "\n").write(to: metrics, atomically: true, encoding: .utf8)
    let log = directory.appendingPathComponent("audit.jsonl")
    let result = try runCapstan([
      "replay", "policies/llm-serving.yaml", "--metrics", metrics.path, "--audit-log", log.path,
    ])
    #expect(result.status == 1)
    #expect(
      result.stderr.contains(
        "\(metrics.path):\(bad + 1): error: 'lots' in column 'request_rate' is not a number"))
    #expect(result.stdout.isEmpty)
    let records = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
    #expect(!records.isEmpty && records.allSatisfy { $0.contains(#""time":"2023-11-16T0"#) })
  }

  @Test(
    "bad replay input is refused with a message naming the problem",
    arguments: [
      (
        ["--metrics", "no-such.csv"], "no-such.csv: error: cannot read the file: No such file or directory"
      ),
      (["--metrics", "examples/llm-day.csv", "--interval", "15"], "--interval: '15' has no unit"),
      (
        ["--metrics", "examples/llm-day.csv", "--start", "infer=2"],
        "--start names 'infer', which the policy does not scale"
      ),
      (
        ["--metrics", "examples/llm-day.csv", "--audit-log", "-"],
        "--audit-log -: the report goes to standard output; give the audit log a file"
      ),
    ])
  func badReplayInput(arguments: [String], message: String) throws {
    let result = try runCapstan(["replay", "policies/llm-serving.yaml"] + arguments)
    #expect(result.status != 0)
    #expect(result.stderr.contains(message))
  }
}
