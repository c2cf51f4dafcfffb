import CapstanTestKit
import Foundation
import Testing

/// The real binary: `validate` shows the floor, `replay` applies it from a history file.
@Suite("capstan replay: predictive floor", .serialized)
struct PredictiveReplayTests {
  /// 2023-11-15T00:00:00Z.
  static let midnight = 1_700_006_400.0

  static func folder() throws -> URL {
    let folder = temporaryFile("predictive")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try """
    controller: {interval: 15s}
    processes:
      model:
        startup: 2m
        scaling: {metric: queue, target: 10, min: 1, max: 12}
        predictive: {history: {file: history.csv}}
    """.write(to: folder.appendingPathComponent("policy.yaml"), atomically: true, encoding: .utf8)
    // Yesterday, a minute at a time: 100 queued from 09:00 to 10:00, else 10.
    var history = "timestamp,queue\n"
    for minute in stride(from: midnight - 86_400, to: midnight, by: 60) {
      let hour = (minute - (midnight - 86_400)) / 3600
      history += "\(Int(minute)),\(hour >= 9 && hour < 10 ? 100 : 10)\n"
    }
    try history.write(to: folder.appendingPathComponent("history.csv"), atomically: true, encoding: .utf8)
    // Today from 08:00 to 10:00, every 15 s, the same shape.
    var recording = "timestamp,queue\n"
    for second in stride(from: 8 * 3600.0, to: 10 * 3600, by: 15) {
      recording += "\(Int(midnight + second)),\(second >= 9 * 3600 ? 100 : 10)\n"
    }
    try recording.write(to: folder.appendingPathComponent("today.csv"), atomically: true, encoding: .utf8)
    return folder
  }

  /// `capstan replay` of the folder's policy over today's recording.
  static func replay(_ folder: URL, audit: URL? = nil) throws -> CommandResult {
    try runCapstan(
      [
        "replay", folder.appendingPathComponent("policy.yaml").path, "--metrics",
        folder.appendingPathComponent("today.csv").path,
      ] + (audit.map { ["--audit-log", $0.path] } ?? []))
  }

  @Test("validate shows the floor in the process's line")
  func validateShowsTheFloor() throws {
    let folder = try Self.folder()
    let result = try runCapstan(["validate", folder.appendingPathComponent("policy.yaml").path])
    #expect(result.status == 0)
    #expect(
      result.stdout.contains(
        "; predictive floor on queue at 10 per replica: daily profile, 5m slots, p90, 2m15s ahead, up to max 12, history from history.csv and what it sees"
      ))
  }

  @Test("replay learns the history file's day before the recording and scales a lookahead ahead of 09:00")
  func replayAppliesTheFloor() throws {
    let folder = try Self.folder()
    let audit = folder.appendingPathComponent("audit.jsonl")
    let result = try Self.replay(folder, audit: audit)
    #expect(result.status == 0, "\(result.stderr)")
    let records = try String(contentsOf: audit, encoding: .utf8).split(separator: "\n").compactMap {
      try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    #expect(records.first?["event"] as? String == "predictive_floor")
    let up = try #require(records.first { $0["event"] as? String == "scale_up" })
    #expect(up["time"] as? String == "2023-11-15T08:57:45Z")
    #expect(up["reason"] as? String == "predictive_floor" && up["to"] as? Int == 10)
    let forecast = try #require(up["forecast"] as? [String: Any])
    #expect(forecast["history_from"] as? String == "2023-11-14T00:00:00Z")
    #expect(forecast["source"] as? String == "from history.csv and what it sees")
    #expect(result.stdout.contains("predictive_floor"))
  }

  @Test("a history file with nothing before the recording: a note, and the floor learns as it goes")
  func historyAfterTheRecording() throws {
    let folder = try Self.folder()
    // Only rows from after the recording starts.
    try "timestamp,queue\n\(Int(Self.midnight + 11 * 3600)),100\n".write(
      to: folder.appendingPathComponent("history.csv"), atomically: true, encoding: .utf8)
    let result = try Self.replay(folder)
    #expect(result.status == 0, "\(result.stderr)")
    #expect(
      result.stderr.contains(
        "history.csv: note: no value of 'queue' before the recording starts; the predictive floor of 'model' learns from the recording as it goes"
      ), "\(result.stderr)")
    // No history: the floor stays off (a warning), and no scale-up is the floor's.
    #expect(!result.stdout.contains("predictive floor 10"))
  }

  @Test("a history file with a bad row stops the replay before it starts, at the file's line")
  func badHistoryFile() throws {
    let folder = try Self.folder()
    let history = folder.appendingPathComponent("history.csv")
    try (String(contentsOf: history, encoding: .utf8) + "\(Int(Self.midnight - 30)),lots\n").write(
      to: history, atomically: true, encoding: .utf8)
    let audit = folder.appendingPathComponent("audit.jsonl")
    let result = try Self.replay(folder, audit: audit)
    #expect(result.status == 1)
    #expect(
      result.stderr.contains("history.csv:1442: error: 'lots' in column 'queue' is not a number"),
      "\(result.stderr)")
    #expect(result.stdout.isEmpty)
    #expect((try? String(contentsOf: audit, encoding: .utf8))?.isEmpty ?? true)
  }

  @Test("a history file that is not there stops the replay before it starts, naming the file")
  func missingHistoryFile() throws {
    let folder = try Self.folder()
    try FileManager.default.removeItem(at: folder.appendingPathComponent("history.csv"))
    let audit = folder.appendingPathComponent("audit.jsonl")
    let result = try Self.replay(folder, audit: audit)
    #expect(result.status == 1)
    #expect(
      result.stderr
        == "\(folder.appendingPathComponent("policy.yaml").path): error: the predictive floor of 'model' reads its history from \(folder.appendingPathComponent("history.csv").path), which cannot be read: record one there (capstan record), or set history: learned\n",
      "\(result.stderr)")
    #expect(result.stdout.isEmpty)
    #expect((try? String(contentsOf: audit, encoding: .utf8))?.isEmpty ?? true)
  }
}
