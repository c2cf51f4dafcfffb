import CapstanTestKit
import Foundation
import Testing

@testable import CapstanCore
@testable import CapstanSignals

func touch(_ url: URL, modified: Date) throws {
  try Data("{}".utf8).write(to: url)
  try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: url.path)
}

@Suite("Directory queue signal")
struct DirectoryQueueSignalTests {
  @Test("depth counts entries, skipping hidden ones and those the glob does not match")
  func depth() async throws {
    let folder = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let now = Date()
    for name in ["a.json", "b.json", "c.tmp", ".partial.json"] {
      try touch(folder.appendingPathComponent(name), modified: now)
    }
    let all = DirectoryQueueSignal(
      name: "q", settings: .init(path: folder.path, measure: .depth), baseDirectory: folder)
    #expect(try await all.read(now: now) == 3)
    let json = DirectoryQueueSignal(
      name: "q", settings: .init(path: folder.path, measure: .depth, glob: "*.json"), baseDirectory: folder)
    #expect(try await json.read(now: now) == 2)
  }

  @Test("oldest_age is the age of the oldest entry, 0 when the spool is empty")
  func oldestAge() async throws {
    let folder = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let now = Date(timeIntervalSince1970: 1_700_000_000)
    let signal = DirectoryQueueSignal(
      name: "age", settings: .init(path: "spool", measure: .oldestAge),
      baseDirectory: folder)
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("spool"), withIntermediateDirectories: true)
    #expect(try await signal.read(now: now) == 0)
    try touch(folder.appendingPathComponent("spool/new"), modified: now.addingTimeInterval(-5))
    try touch(folder.appendingPathComponent("spool/old"), modified: now.addingTimeInterval(-90))
    #expect(try await signal.read(now: now) == 90)
  }

  @Test("a missing directory is an error that says what to do")
  func missing() async {
    let signal = DirectoryQueueSignal(
      name: "q", settings: .init(path: "/nonexistent/spool", measure: .depth),
      baseDirectory: URL(fileURLWithPath: "/"))
    await #expect(
      throws: SignalReadError(
        signal: "q",
        "/nonexistent/spool does not exist: create the spool directory or fix signals.q.directory.path")
    ) {
      try await signal.read(now: Date())
    }
  }
}

@Suite("Command signal")
struct CommandSignalTests {
  /// A command signal; the timeout is long unless a test is about it, so a loaded machine's
  /// slow start of `printf` is not taken for a timeout.
  func signal(_ argv: [String], timeout: TimeInterval = 60) -> CommandSignal {
    CommandSignal(
      name: "c", settings: .init(argv: argv, timeout: timeout), workingDirectory: URL(fileURLWithPath: "/tmp")
    )
  }

  @Test(
    "one number on standard output is the value",
    arguments: [("42", 42.0), ("  3.5\n", 3.5), ("-1e3", -1000)])
  func number(printed: String, value: Double) async throws {
    #expect(try await signal(["printf", printed]).read(now: Date()) == value)
  }

  @Test(
    "failures are errors for the signal, with the reason",
    arguments: [
      (["sh", "-c", "echo broken >&2; exit 3"], "sh exited with status 3: broken"),
      (["printf", "twelve"], "printf printed 'twelve', not one number"),
      (["printf", ""], "printf printed '', not one number"),
      (["no-such-program-capstan"], "'no-such-program-capstan' was not found"),
    ])
  func failures(argv: [String], message: String) async {
    await #expect {
      try await signal(argv).read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.hasPrefix(message) == true
    }
  }

  @Test("a file that is not executable, or not a program, is reported as such")
  func notAProgram() async throws {
    let folder = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let plain = folder.appendingPathComponent("plain")
    let text = folder.appendingPathComponent("text")
    try Data("42\n".utf8).write(to: plain)
    try Data("not a script\n".utf8).write(to: text)
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: plain.path)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: text.path)
    await #expect(
      throws: SignalReadError(
        signal: "c",
        "'\(plain.path)' is not an executable file: chmod +x it, or run it through its interpreter")
    ) {
      try await signal([plain.path]).read(now: Date())
    }
    await #expect {
      try await signal([text.path]).read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message
        == "the system refused to start \(text.path) (Exec format error): is it a program, with a #! line if it is a script?"
    }
  }

  @Test("a command past its timeout is killed and reported", .timeLimit(.minutes(10)))
  func timeout() async {
    await #expect(throws: SignalReadError(signal: "c", "sleep ran past its 0.3s timeout and was killed")) {
      try await signal(["sleep", "30"], timeout: 0.3).read(now: Date())
    }
  }

  /// Processes whose command line is exactly these words.
  func running(_ words: [String]) -> Int {
    let wanted = Data((words.joined(separator: "\0") + "\0").utf8)
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.filter {
      Int($0) != nil && FileManager.default.contents(atPath: "/proc/\($0)/cmdline") == wanted
    }
    .count
  }

  @Test(
    "a child that keeps the output open does not hold the read past the timeout, and goes with the command",
    .timeLimit(.minutes(10)))
  func backgroundChildHoldsPipe() async throws {
    let value = try await signal(["sh", "-c", "sleep 100001 & echo 5"], timeout: 1).read(now: Date())
    #expect(value == 5)
    #expect(await eventually { running(["sleep", "100001"]) == 0 })
  }

  @Test("a child that never stops writing does not hold the read either", .timeLimit(.minutes(10)))
  func endlessWriter() async {
    await #expect(throws: SignalReadError.self) {
      try await signal(["sh", "-c", "yes &"], timeout: 0.5).read(now: Date())
    }
    #expect(await eventually { running(["yes"]) == 0 })
  }

  @Test("a command that ignores SIGTERM is killed with its whole group", .timeLimit(.minutes(10)))
  func ignoresTerm() async {
    await #expect(throws: SignalReadError.self) {
      try await signal(["sh", "-c", "trap '' TERM; sleep 100002"], timeout: 0.5).read(now: Date())
    }
    #expect(await eventually { running(["sleep", "100002"]) == 0 })
  }

  @Test(
    "a value that is not a load (negative, not finite, absurd) is a failed read, never a value",
    arguments: ["-500", "nan", "inf", "1e300"])
  func notALoad(printed: String) async {
    let results = await SignalReaders.readAll([signal(["printf", printed])], now: Date())
    guard case .failure(let error)? = results["c"] else {
      Issue.record("\(printed) was taken as a value: \(String(describing: results["c"]))")
      return
    }
    #expect("\(error)".contains("not a load") || "\(error)".contains("not one number"))
  }

  @Test("arguments are passed as they are, with no shell in between")
  func noShell() async throws {
    #expect(try await signal(["printf", "%s", "7"]).read(now: Date()) == 7)
    await #expect(throws: SignalReadError.self) {
      try await signal(["printf", "$((3+4))"]).read(now: Date())
    }
  }
}

@Suite("Signal sources in the policy")
struct SignalSourcePolicyTests {
  @Test("sources decode into their typed settings")
  func decode() throws {
    let policy = try PolicyLoader.load(
      yaml: """
        signals:
          depth: {directory: {path: spool, measure: depth, glob: "*.job"}}
          age: {directory: {path: /var/spool/jobs, measure: oldest_age, timeout: 1s}}
          p95: {command: {argv: [/usr/local/bin/p95, --window, 5m], timeout: 2s}}
        processes:
          w: {scaling: {metric: depth, target: 10, min: 1, max: 4}}
        autoscaling:
          w: {scale_up: {conditions: [{metric: age > 1m}, {metric: p95 > 2s}]}}
        """, file: "p.yaml"
    ).policy
    let sources = Dictionary(uniqueKeysWithValues: policy.signals.map { ($0.name, $0.source) })
    #expect(sources["depth"] == .directory(.init(path: "spool", measure: .depth, glob: "*.job", timeout: 5)))
    #expect(sources["age"] == .directory(.init(path: "/var/spool/jobs", measure: .oldestAge, timeout: 1)))
    #expect(sources["p95"] == .command(.init(argv: ["/usr/local/bin/p95", "--window", "5m"], timeout: 2)))
  }

  @Test(
    "bad sources are refused at their line and column",
    arguments: [
      ("  q: {command: {argv: \"curl -s http://x | jq .n\"}}", "3:23", "argv is the string"),
      ("  q: {command: {argv: []}}", "3:23", "argv is empty"),
      ("  q: {directory: {path: /s, measure: count}}", "3:38", "measure is 'count': use depth or oldest_age"),
      ("  q: {directory: {measure: depth}}", "3:3", "gives no path"),
      ("  q: {command: {timeout: 1s}}", "3:3", "signals.q.command.argv is missing"),
      (
        "  q: {directory: {path: /s}, command: {argv: [a]}}", "3:3",
        "has directory and command: give it one source"
      ),
      ("  q: {directory: {path: /s, timeout: 5}}", "3:38", "'5' has no unit"),
      ("  q: {kafka: {topic: x}}", "3:7", "unknown key 'kafka' in signals.q"),
    ])
  func badSources(line: String, position: String, message: String) {
    let yaml = "processes: {w: {scaling: {metric: q, target: 1, min: 1, max: 2}}}\nsignals:\n\(line)\n"
    #expect {
      try PolicyLoader.load(yaml: yaml, file: "p.yaml")
    } throws: { error in
      guard let first = (error as? PolicyLoadError)?.errors.first else { return false }
      return "\(first.location.line):\(first.location.column)" == position && first.message.contains(message)
    }
  }
}

@Suite("Programs Capstan runs")
struct ProgramSignalStateTests {
  /// Under `capstan run`, ServiceLifecycle ignores SIGTERM, SIGINT and SIGHUP to trap them; the
  /// programs Capstan starts must not inherit that, or they cannot be stopped or trap a signal.
  @Test("a command starts with every signal at its default, even when Capstan ignores some")
  func cleanSignals() async throws {
    let previous = signal(SIGHUP, SIG_IGN)
    defer { signal(SIGHUP, previous) }
    // The child's ignored-signal mask, as a decimal number.
    let ignored = CommandSignal(
      name: "ignored",
      settings: .init(argv: [
        "sh", "-c", #"printf '%d\n' "0x$(awk '/^SigIgn/ { print $2 }' /proc/self/status)""#,
      ]),
      workingDirectory: URL(fileURLWithPath: "/tmp"))
    let mask = UInt64(try await ignored.read(now: Date()))
    // Signals 1 to 31; 32 and 33 are glibc's own, which no program can use or reset.
    #expect(mask & 0x7FFF_FFFF == 0, "ignored-signal mask \(String(mask, radix: 16))")
  }
}

@Suite("Signals that declare one source")
struct SharedSourceTests {
  @Test(
    "signals that declare the same source with the same settings are read once a tick, each given its value or its failure; another setting is another read"
  )
  func readOnce() async throws {
    let folder = try scratchDirectory("shared")
    defer { try? FileManager.default.removeItem(at: folder) }
    let log = folder.appendingPathComponent("reads")
    let script = folder.appendingPathComponent("count.sh")
    // Each run leaves a line in the log and answers 7; with an argument, it fails. The timeouts
    // are long, so a loaded machine does not turn a read into a failure; c's differs from a's,
    // which makes it another read.
    try "#!/bin/sh\necho run >> \(log.path)\n[ -n \"$1\" ] && exit 3\necho 7\n".write(
      to: script, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
    let policy = try PolicyLoader.load(
      yaml: """
        signals:
          a: {command: {argv: [\(script.path)], timeout: 60s}}
          b: {command: {argv: [\(script.path)], timeout: 60s}}
          c: {command: {argv: [\(script.path)], timeout: 59s}}
          d: {command: {argv: [\(script.path), fail], timeout: 60s}}
          e: {command: {argv: [\(script.path), fail], timeout: 60s}}
        processes:
          w: {scaling: {metric: a, target: 10, min: 1, max: 4}}
        autoscaling:
          w: {scale_up: {conditions: [{metric: b > 1}, {metric: c > 1}, {metric: d > 1}, {metric: e > 1}]}}
        """, file: "p.yaml"
    ).policy
    let readers = SignalReaders.make(policy.signals, baseDirectory: folder)
    #expect(readers.count == 3)
    let results = await SignalReaders.readAll(readers, now: Date())
    #expect(Set(results.keys) == ["a", "b", "c", "d", "e"])
    for name in ["a", "b", "c"] { #expect((try? results[name]?.get()) == 7) }
    for name in ["d", "e"] {
      let error = try #require(
        results[name].flatMap { result -> SignalReadError? in
          if case .failure(let error) = result { return error as? SignalReadError }
          return nil
        })
      #expect(error.signal == name, "the failure names \(name)")
    }
    // a and b once, c once (its own timeout), d and e once.
    let runs = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").count
    #expect(runs == 3)
  }
}

@Suite("signal reads at once, bounded")
struct BoundedReadsTests {
  /// A reader that notes how many reads of its kind run at the moment it starts.
  struct CountingReader: SignalReader {
    let name: String
    let running: Running
    var timeout: TimeInterval { 10 }
    func read(now: Date) async throws -> Double {
      await running.enter()
      try? await Task.sleep(nanoseconds: 20_000_000)
      await running.leave()
      return 1
    }
  }

  actor Running {
    private(set) var now = 0
    private(set) var most = 0
    func enter() {
      now += 1
      most = max(most, now)
    }
    func leave() { now -= 1 }
  }

  @Test("no more reads run at once than the bound, and every signal gets its value")
  func bounded() async {
    for limit in [1, 3] {
      let running = Running()
      let readers = (0..<12).map { CountingReader(name: "s\($0)", running: running) as any SignalReader }
      let results = await SignalReaders.readAll(readers, now: Date(), concurrently: limit)
      #expect(results.count == 12)
      #expect(results.values.allSatisfy { (try? $0.get()) == 1 })
      #expect(await running.most <= limit)
    }
  }
}
