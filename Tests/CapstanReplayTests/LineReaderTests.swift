import CapstanTestKit
import Foundation
import Testing

@testable import CapstanReplay

@Suite("Reading a file line by line")
struct LineReaderTests {
  private func write(_ bytes: [UInt8]) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("lines-\(UUID().uuidString)")
      .path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }

  private func lines(_ path: String) throws -> [String] {
    let reader = try LineReader(path: path)
    var lines: [String] = []
    while let line = try reader.nextLine() { lines.append(line) }
    return lines
  }

  @Test("CRLF and LF endings, a byte-order mark, blank lines and no newline at the end")
  func endings() throws {
    let path = try write(Array("\u{FEFF}a,b\r\n\nc\r\nd".utf8))
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(try lines(path) == ["a,b", "", "c", "d"])
  }

  @Test("lines that cross the read buffer's edges come out whole, numbered in order")
  func acrossChunks() throws {
    // 200,000 lines of varied length: about 1.5 MB, many times the 64 KB buffer.
    let expected = (0..<200_000).map { String(repeating: "x", count: $0 % 13) + "\($0)" }
    let path = try write(Array(expected.joined(separator: "\n").utf8) + [10])
    defer { try? FileManager.default.removeItem(atPath: path) }
    let reader = try LineReader(path: path)
    var index = 0
    while let line = try reader.nextLine() {
      guard line == expected[index], reader.lineNumber == index + 1 else {
        Issue.record("line \(index + 1) read as \(line.prefix(40))")
        return
      }
      index += 1
    }
    #expect(index == expected.count)
  }

  @Test("lines longer than the read buffer come out whole, and so do the short ones around them")
  func longerThanTheBuffer() throws {
    let long = String(repeating: "a", count: 100_000) + "b"
    let longer = String(repeating: "c", count: 300_000) + "d"
    let expected = ["short", long, "x", longer, "end"]
    let path = try write(Array(expected.joined(separator: "\n").utf8))
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(try lines(path) == expected)
  }

  @Test("a line longer than the limit is an error at its number, not unbounded memory")
  func tooLong() throws {
    let path = try write(
      Array("short\n".utf8) + Array(repeating: UInt8(ascii: "y"), count: LineReader.maxLineBytes + 10))
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect {
      _ = try lines(path).count
    } throws: { error in
      "\(error)".hasPrefix("\(path):2: error: a line longer than")
    }
  }

  @Test("a missing file says which and why")
  func missing() {
    #expect {
      try LineReader(path: "/nonexistent/trace.csv")
    } throws: { error in
      "\(error)".contains("/nonexistent/trace.csv") && "\(error)".contains("No such file")
    }
  }
}
