import Foundation
import Testing

@testable import CapstanSimulation

@Suite("JSON Lines traces read fast, judged as JSONDecoder judges them")
struct JSONLineScannerTests {
  static let keys: [StaticString] = ["timestamp", "input_length", "output_length"]

  private static func scanned(_ line: String) -> [Double]? {
    var text = line
    return text.withUTF8 { JSONLineScanner.numbers(keys, in: $0) }
  }

  private static func decoded(_ line: String) -> [Double]? {
    guard let line = try? JSONDecoder().decode(TraceLineParser.MooncakeLine.self, from: Data(line.utf8))
    else {
      return nil
    }
    return [line.timestamp, line.inputLength, line.outputLength]
  }

  @Test(
    "plain lines read the same numbers as JSONDecoder",
    arguments: [
      #"{"timestamp": 0, "input_length": 40160, "output_length": 6, "hash_ids": [0, 1, 2]}"#,
      #"{"timestamp":27482.5,"input_length":6955,"output_length":52}"#,
      #" {"hash_ids": [[1], {"a": "b\u00e9\n"}], "output_length": 1e2, "timestamp": -0.5E-1, "input_length": 0, "x": null, "y": true}  "#,
      #"{"timestamp": 123456789012345678901, "input_length": 1.5, "output_length": 2}"#,
    ])
  func plain(line: String) throws {
    let scanned = try #require(Self.scanned(line))
    #expect(scanned == Self.decoded(line))
  }

  @Test(
    "what it does not read plainly it leaves to JSONDecoder: escapes in keys, duplicates, strings, grammar errors",
    arguments: [
      #"{"time\u0073tamp": 1, "input_length": 2, "output_length": 3}"#,
      #"{"timestamp": 1, "timestamp": 2, "input_length": 2, "output_length": 3}"#,
      #"{"timestamp": "1", "input_length": 2, "output_length": 3}"#,
      #"{"timestamp": 01, "input_length": 2, "output_length": 3}"#,
      #"{"timestamp": 1, "input_length": 2, "output_length": 3,}"#,
      #"{"timestamp": 1, "input_length": 2, "output_length": 3} x"#,
      #"{"timestamp": 1, "input_length": 2, "output_length": 3, "h": [1,,2]}"#,
      #"{"timestamp": 1, "input_length": 2, "output_length": 1e999}"#,
      #"{"timestamp": 1, "input_length": 2}"#,
      #"{"timestamp": 1, "input_length": 2, "output_length": 3, "s": "\q"}"#,
      #"[1, 2, 3]"#,
    ])
  func leftToDecoder(line: String) {
    #expect(Self.scanned(line) == nil)
  }

  @Test(
    "on every line made by cutting, doubling or changing a byte of a plain line, it agrees with JSONDecoder or stands aside"
  )
  func mutations() {
    let line =
      #"{"timestamp": 1200.5, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47], "s": "a\"b"}"#
    let bytes = Array(line.utf8)
    let replacements: [UInt8] = Array(#"{}[]",:.-+eE0159 \atn"#.utf8)
    var checked = 0
    var read = 0
    for index in bytes.indices {
      var variants: [[UInt8]] = [Array(bytes[..<index]), bytes[..<index] + [bytes[index]] + bytes[index...]]
      for byte in replacements {
        var changed = bytes
        changed[index] = byte
        variants.append(changed)
      }
      for variant in variants {
        let text = String(decoding: variant, as: UTF8.self)
        checked += 1
        if let scanned = Self.scanned(text) {
          read += 1
          #expect(scanned == Self.decoded(text), "\(text)")
        }
      }
    }
    // Most variants are broken JSON; the digits changed in place still read.
    #expect(checked > 2_000 && read > 100)
  }
}
