import CapstanCore
import CapstanTestKit
import Foundation
import Testing

@testable import CapstanReplay

@Suite("Recorded metrics")
struct RecordedMetricsTests {
  @Test(
    "timestamps: RFC 3339 with any offset, or Unix seconds",
    arguments: [
      ("2023-11-16T00:00:00Z", 1_700_092_800.0), ("2023-11-16T01:00:00+01:00", 1_700_092_800),
      ("2023-11-15T19:00:00-05:00", 1_700_092_800), ("2023-11-16T00:00:00.250Z", 1_700_092_800.25),
      ("1700092800", 1_700_092_800), ("1700092800.5", 1_700_092_800.5),
      ("2024-02-29T12:00:00Z", 1_709_208_000),
    ])
  func timestamps(text: String, seconds: Double) throws {
    let metrics = try RecordedMetrics.parseCSV("timestamp,q\n\(text),1\n", file: "m.csv")
    #expect(metrics.samples.first?.time.timeIntervalSince1970 == seconds)
  }

  @Test("a byte-order mark and CR-only line endings read as the same file")
  func bomAndCR() throws {
    let plain = try RecordedMetrics.parseCSV("timestamp,q\n1700092800,1\n1700092860,2\n", file: "m.csv")
    for variant in [
      "\u{FEFF}timestamp,q\n1700092800,1\n1700092860,2\n", "timestamp,q\r1700092800,1\r1700092860,2\r",
    ] {
      let metrics = try RecordedMetrics.parseCSV(variant, file: "m.csv")
      #expect(metrics.columns == plain.columns)
      #expect(metrics.samples.map(\.values) == plain.samples.map(\.values))
    }
  }

  @Test("an empty cell is a missing value")
  func emptyCells() throws {
    let metrics = try RecordedMetrics.parseCSV(
      "timestamp,q,gpu\n2023-11-16T00:00:00Z,,80\n2023-11-16T00:01:00Z,5,\n", file: "m.csv")
    #expect(metrics.columns == ["q", "gpu"])
    #expect(metrics.samples.map(\.values) == [["gpu": 80], ["q": 5]])
  }

  @Test(
    "bad rows are reported with their line",
    arguments: [
      ("timestamp,q\n2023-11-16T00:00:00Z,five\n", "m.csv:2: error: 'five' in column 'q' is not a number"),
      (
        "timestamp,q\n2023-11-16T00:00:00Z,1\nyesterday,1\n", "m.csv:3: error: 'yesterday' is not a timestamp"
      ),
      ("timestamp,q\n2023-11-16T00:00:00Z,1,2\n", "m.csv:2: error: 3 cells for 2 columns"),
      ("time,q\n1,2\n", "m.csv:1: error: the first column must be 'timestamp'"),
      ("", "m.csv:1: error: empty file"),
      (
        "timestamp,q\n2023-11-16T00:01:00Z,5\n2023-11-16T00:00:00Z,1\n",
        "m.csv:3: error: 2023-11-16T00:00:00Z is earlier than the row before"
      ),
      ("timestamp,q\nnan,1\n", "m.csv:2: error: 'nan' is not a time between 1970 and 2200"),
      // No 30 February, no 60th second, no offset of 24 hours.
      ("timestamp,q\n2023-02-30T00:00:00Z,1\n", "m.csv:2: error: '2023-02-30T00:00:00Z' is not a timestamp"),
      ("timestamp,q\n2023-11-16T00:00:60Z,1\n", "m.csv:2: error: '2023-11-16T00:00:60Z' is not a timestamp"),
      (
        "timestamp,q\n2023-11-16T00:00:00+24:00,1\n",
        "m.csv:2: error: '2023-11-16T00:00:00+24:00' is not a timestamp"
      ),
      ("timestamp,q\ninf,1\n", "m.csv:2: error: 'inf' is not a time between 1970 and 2200"),
      ("timestamp,q\n-1,1\n", "m.csv:2: error: '-1' is not a time between 1970 and 2200"),
      (
        "timestamp,q\n1700092800000,1\n",
        "m.csv:2: error: '1700092800000' is not a time between 1970 and 2200 in Unix seconds: it looks like Unix milliseconds"
      ),
      (
        "timestamp,q\n1969-12-31T00:00:00Z,1\n",
        "m.csv:2: error: '1969-12-31T00:00:00Z' is not between 1970 and 2200"
      ),
      (
        "timestamp,q\n2023-11-16T00:00:00Z,7\u{0}garbage\n",
        "m.csv:2: error: '7\u{0}garbage' in column 'q' is not a number"
      ),
      (
        "timestamp,w.replicas\n2023-11-16T00:00:00Z,-100000\n",
        "m.csv:2: error: '-100000.0' in column 'w.replicas' is not a replica count"
      ),
      (
        "timestamp,w.replicas\n2023-11-16T00:00:00Z,2.5\n",
        "m.csv:2: error: '2.5' in column 'w.replicas' is not a replica count"
      ),
      (
        "timestamp,w.ready\n2023-11-16T00:00:00Z,-0\n",
        "m.csv:2: error: '-0.0' in column 'w.ready' is not a replica count"
      ),
    ])
  func badCSV(text: String, message: String) {
    #expect {
      try RecordedMetrics.parseCSV(text, file: "m.csv")
    } throws: { error in
      "\(error)".hasPrefix(message)
    }
  }

  @Test("JSON Lines: null and an absent key are both missing")
  func jsonLines() throws {
    let metrics = try RecordedMetrics.parseJSONLines(
      """
      {"timestamp": "2023-11-16T00:00:00Z", "q": 3, "gpu": null}
      {"timestamp": 1700092860, "gpu": 70.5}
      """, file: "m.jsonl")
    #expect(metrics.samples.map(\.values) == [["q": 3], ["gpu": 70.5]])
    #expect(metrics.samples.last?.time.timeIntervalSince1970 == 1_700_092_860)
  }

  @Test("JSON Lines refuses text values", arguments: [#"{"timestamp": 1, "q": "3"}"#, #"{"q": 3}"#, "[1,2]"])
  func badJSONLines(line: String) {
    #expect(throws: MetricsFileError.self) { try RecordedMetrics.parseJSONLines(line, file: "m.jsonl") }
  }
}

@Suite("Recorded metrics read by position")
struct ProjectedRowsTests {
  static let csv = """
    timestamp,queue, gpu ,w.replicas,unused
    2023-11-16T00:00:00Z,5,70,2,1
    2023-11-16T00:01:00Z,,71.5,3,
    2023-11-16T00:02:00Z,7, 0x10 ,3,2e3
    """

  static func write(_ text: String) throws -> String {
    let file = temporaryFile("rows.csv")
    try text.write(to: file, atomically: true, encoding: .utf8)
    return file.path
  }

  @Test("a CSV file's rows read straight into positions match its samples, column by column")
  func sameAsSamples() throws {
    let path = try Self.write(Self.csv)
    let columns = ["gpu", "missing", "w.replicas", "queue"]
    var projected = try RecordedMetricsFile(path: path)
    var samples = try RecordedMetricsFile(path: path)
    var rows = 0
    while let row = try projected.next(projectedOnto: columns) {
      let sample = try #require(try samples.next())
      #expect(row.time == sample.time)
      #expect(row.values == columns.map { sample.values[$0] })
      rows += 1
    }
    #expect(try samples.next() == nil)
    #expect(rows == 3)
  }

  @Test("a bad cell in a column nobody asked for still stops the read at its line")
  func everyCellChecked() throws {
    let path = try Self.write(Self.csv + "\n2023-11-16T00:03:00Z,7,70,3,abc\n")
    var file = try RecordedMetricsFile(path: path)
    #expect(throws: MetricsFileError.self) {
      while try file.next(projectedOnto: ["queue"]) != nil {}
    }
    var again = try RecordedMetricsFile(path: path)
    do {
      while try again.next(projectedOnto: ["queue"]) != nil {}
    } catch let error as MetricsFileError {
      #expect(error.line == 5 && error.message.contains("'abc' in column 'unused' is not a number"))
    }
  }
}

@Suite("Numbers read from cells")
struct CellNumberTests {
  /// What C's strtod makes of the whole cell, or nil where it stops short.
  private func strtodValue(_ text: String) -> Double? {
    text.withCString { base in
      var end: UnsafeMutablePointer<CChar>?
      let value = strtod(base, &end)
      guard let end, end == UnsafeMutablePointer(mutating: base) + text.utf8.count, !text.isEmpty else {
        return nil
      }
      return value
    }
  }

  private func parsed(_ text: String) -> Double? {
    var text = text
    return text.withUTF8 { parseNumber($0) }
  }

  @Test("plain decimals read exactly as strtod reads them, bit for bit")
  func decimalsMatchStrtod() {
    // A fixed generator, so a failure repeats.
    var generator = FixedSequence(seed: 0x5eed)
    var fast = 0
    for _ in 0..<200_000 {
      let integer = String(generator.next() % 10_000_000_000, radix: 10)
      let fractionLength = Int(generator.next() % 24)
      var fraction = ""
      for _ in 0..<fractionLength { fraction += String(generator.next() % 10) }
      let sign = ["", "-", "+"][Int(generator.next() % 3)]
      let text =
        fractionLength == 0 && generator.next() % 2 == 0 ? sign + integer : "\(sign)\(integer).\(fraction)"
      let expected = strtodValue(text)
      let got = parsed(text)
      #expect(got?.bitPattern == expected?.bitPattern, "\(text)")
      var bytes = text
      if bytes.withUTF8({ exactDecimal($0) }) != nil { fast += 1 }
    }
    // Both paths were taken: the exact one for short cells, strtod for long ones.
    #expect(fast > 50_000 && fast < 150_000)
  }

  @Test(
    "edges: 2^53 and past it, 22 and 23 decimals, signs, zeros, a lone point",
    arguments: [
      "9007199254740992", "9007199254740993", "0.9007199254740993", "1.0000000000000000000001",
      "0.0000000000000000000001", "-0", "-0.0", "+0.5", "5.", ".5", ".", "-", "+", "", "1e3", "1.5e-3",
      "00000000000000000000000001", "123456789012345678901234", "0x10", "inf", "nan", "1,5", "1 ",
    ])
  func edges(text: String) {
    #expect(parsed(text)?.bitPattern == strtodValue(text)?.bitPattern)
  }

  @Test(
    "a cell read where it starts in a row, before its comma and at the line's end, reads as the cell alone",
    arguments: [
      "12.5", "-0", "+0.5", "5.", ".5", "007", "9007199254740993", "1.0000000000000000000001", "1e3", " 1",
      "1 ", "\t2.5\t", "", "0x10", "1.2.3", "1-2", "five", ".", "-",
    ])
  func cellsInRows(text: String) throws {
    let csv = "timestamp,first,last\n2023-11-16T00:00:00Z,\(text),\(text)\n"
    let alone = parsed(text.trimmingCharacters(in: .whitespaces))
    if text.trimmingCharacters(in: .whitespaces).isEmpty {
      #expect(try RecordedMetrics.parseCSV(csv, file: "m.csv").samples.first?.values == [:])
    } else if let alone {
      let values = try #require(try RecordedMetrics.parseCSV(csv, file: "m.csv").samples.first?.values)
      #expect(values["first"]?.bitPattern == alone.bitPattern)
      #expect(values["last"]?.bitPattern == alone.bitPattern)
    } else {
      #expect(throws: MetricsFileError.self) { try RecordedMetrics.parseCSV(csv, file: "m.csv") }
    }
  }
}

/// Knuth's MMIX linear congruential generator: the random cells are the same every run.
struct FixedSequence {
  private var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return state >> 11
  }
}
