import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Every `capstan …` line that README.md and docs/ show in a shell block runs from the
/// repository root against the built binary, bounded in time, and exits as the text says.
///
/// - A `$ capstan …` line in a block followed by output lines: each output line appears in
///   what it prints, and it exits 1 where the output shows an `error:`, else 0.
/// - A `capstan run` line runs until its first state is saved, then gets Ctrl-C (SIGINT) and
///   must drain and exit 0, as the README says; it gets a free port and a scratch state folder.
/// - Any other line exits 0.
/// - Files a line writes (`--out`, `--report`, `--audit-log`, `--state-dir`) go to a scratch
///   folder, not the repository.
/// - A block that needs what no test here can give is marked `<!-- docs-test: skip: WHY -->`
///   on the line before it, and the reason must say what covers it instead.
@Suite("The commands the docs show")
struct DocsCommandTests {
  struct Command: CustomStringConvertible, Sendable {
    var file: String
    var line: Int
    var arguments: [String]
    var expectedOutput: [String]
    var description: String { "\(file):\(line): capstan \(arguments.joined(separator: " "))" }
  }

  static let commands: [Command] = (try? findCommands()) ?? []

  static func findCommands() throws -> [Command] {
    let docs = try FileManager.default.contentsOfDirectory(
      atPath: repositoryRoot.appendingPathComponent("docs").path
    ).filter { $0.hasSuffix(".md") }.sorted().map { "docs/\($0)" }
    var found: [Command] = []
    for file in ["README.md"] + docs {
      let text = try String(contentsOf: repositoryRoot.appendingPathComponent(file), encoding: .utf8)
      found += commands(in: text, file: file)
    }
    return found
  }

  static func commands(in text: String, file: String) -> [Command] {
    var found: [Command] = []
    var inBlock = false
    var shell = false
    var skipped = false
    var previous = ""
    for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      defer { previous = trimmed }
      if trimmed.hasPrefix("```") {
        if inBlock {
          inBlock = false
        } else {
          inBlock = true
          let language = trimmed.dropFirst(3)
          shell = ["", "sh", "bash", "shell", "console"].contains(String(language))
          skipped = previous.hasPrefix("<!-- docs-test: skip:")
        }
        continue
      }
      guard inBlock, shell, !skipped else { continue }
      let command = trimmed.hasPrefix("$ ") ? String(trimmed.dropFirst(2)) : trimmed
      if let words = capstanWords(command) {
        found.append(Command(file: file, line: index + 1, arguments: words, expectedOutput: []))
      } else if trimmed.hasPrefix("$ ") || trimmed.isEmpty {
        continue
      } else if var last = found.last, last.file == file, !command.hasPrefix("#") {
        // Output shown under a `$ capstan` line.
        if text.split(separator: "\n", omittingEmptySubsequences: false)[last.line - 1]
          .trimmingCharacters(in: .whitespaces).hasPrefix("$ ")
        {
          last.expectedOutput.append(trimmed)
          found[found.count - 1] = last
        }
      }
    }
    return found
  }

  /// The arguments of a `capstan` (or `.build/debug/capstan`) command line; nil for any other.
  static func capstanWords(_ line: String) -> [String]? {
    let withoutComment = line.split(separator: "#", maxSplits: 1).first.map(String.init) ?? line
    let words = withoutComment.split(separator: " ").map(String.init)
    guard let first = words.first, first == "capstan" || first.hasSuffix("/capstan") else { return nil }
    return Array(words.dropFirst())
  }

  @Test("the docs show capstan commands, and each names a file the repository has")
  func found() throws {
    let commands = try Self.findCommands()
    #expect(commands.count >= 8, "\(commands)")
    for command in commands {
      for word in command.arguments where word.contains("/") && !word.hasPrefix("/") && !word.hasPrefix("-") {
        let path = word.split(separator: "=").last.map(String.init) ?? word
        #expect(
          FileManager.default.fileExists(atPath: repositoryRoot.appendingPathComponent(path).path),
          "\(command): \(path) is not in the repository")
      }
    }
  }

  @Test("each command runs and exits as the text says", arguments: commands)
  func runs(_ command: Command) async throws {
    let scratch = try scratchDirectory("docs")
    defer { try? FileManager.default.removeItem(at: scratch) }
    var arguments = command.arguments
    // Written files go to the scratch folder.
    for (index, word) in arguments.enumerated()
    where ["--out", "--report", "--audit-log", "--state-dir"].contains(word) && index + 1 < arguments.count {
      arguments[index + 1] =
        scratch.appendingPathComponent(
          URL(fileURLWithPath: arguments[index + 1]).lastPathComponent
        ).path
    }
    if arguments.first == "run" {
      try await runUntilInterrupted(arguments, scratch: scratch, command: command)
      return
    }
    let result = try runCapstan(arguments, timeout: 600)
    let printed = result.stdout + result.stderr
    let expectsError = command.expectedOutput.contains { $0.contains("error:") }
    #expect(result.status == (expectsError ? 1 : 0), "\(command)\n\(result.stderr)")
    for expected in command.expectedOutput {
      #expect(printed.contains(expected), "\(command): '\(expected)' not in:\n\(printed)")
    }
  }

  /// `capstan run` until its first state is saved, then Ctrl-C: it drains and exits 0. Run by
  /// the test kit's `RunningCapstan`, with the line's own options, a scratch state folder (the
  /// `--state-dir` the line names was moved there already) and a free port.
  func runUntilInterrupted(_ arguments: [String], scratch: URL, command: Command) async throws {
    var options = Array(arguments.dropFirst(2))
    var stateDirectory = scratch.appendingPathComponent("state")
    if let index = options.firstIndex(of: "--state-dir"), index + 1 < options.count {
      stateDirectory = URL(fileURLWithPath: options[index + 1])
      options.removeSubrange(index...(index + 1))
    }
    let running = try RunningCapstan(
      policy: repositoryRoot.appendingPathComponent(arguments[1]), stateDirectory: stateDirectory,
      extraArguments: options)
    let saved = await eventually(timeout: 120) {
      FileManager.default.fileExists(atPath: stateDirectory.appendingPathComponent("state.json").path)
        || !running.process.isRunning
    }
    #expect(saved && running.process.isRunning, "\(command) did not start:\n\(running.log)")
    running.signal(SIGINT)
    let status = await running.waitForExit(timeout: 120)
    #expect(
      status == 0, "\(command) exited \(status.map(String.init) ?? "not at all") on Ctrl-C:\n\(running.log)")
  }
}
