import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The `capstan` binary SwiftPM built beside the test bundle, for tests that run it as a user
/// (or the local supervisor) would.
public enum CapstanBinary {
  public static func url() throws -> URL {
    let candidates = [
      Bundle.main.executableURL?.deletingLastPathComponent(),
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
      Bundle.main.bundleURL.deletingLastPathComponent(),
    ].compactMap { $0 }
    for folder in candidates {
      let binary = folder.appendingPathComponent("capstan")
      if FileManager.default.isExecutableFile(atPath: binary.path) { return binary }
    }
    throw NotBuilt(searched: candidates.map(\.path))
  }

  public struct NotBuilt: Error, CustomStringConvertible {
    public var searched: [String]
    public var description: String {
      "no capstan binary beside the tests (looked in \(searched)); run swift build first"
    }
  }
}

/// A fresh folder under the temporary directory.
public func scratchDirectory(_ label: String = "test") throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "capstan-\(label)-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// How many times longer than an idle machine needs a wait may last.
///
/// CI runs the suite on two busy cores, where a tick of the controller under test has been seen to
/// take forty times its idle length. A wait that ends as soon as its condition holds costs nothing
/// when it is generous, so only a test that is failing anyway waits the whole of it.
public let waitPatience: TimeInterval = 8

/// Polls until `condition` holds, giving up after `timeout` × `waitPatience`; for waiting on real
/// processes. `timeout` is what an idle machine needs, with room to spare.
public func eventually(
  timeout: TimeInterval = 10, every interval: TimeInterval = 0.05, _ condition: () async throws -> Bool
) async rethrows -> Bool {
  let deadline = Date().addingTimeInterval(timeout * waitPatience)
  while Date() < deadline {
    if try await condition() { return true }
    try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
  }
  return try await condition()
}

/// Writes an executable shell script.
///
/// Through a close-on-exec descriptor, so that a process another test starts meanwhile cannot
/// keep it open for writing and make running it fail with ETXTBSY.
public func writeScript(_ url: URL, _ body: String) throws {
  let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
  guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown) }
  let bytes = Array(("#!/bin/sh\n" + body + "\n").utf8)
  let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
  close(descriptor)
  guard written == bytes.count else { throw CocoaError(.fileWriteUnknown) }
  try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
}

/// The repository's root folder, which the tests run the binary in, as a user would.
public let repositoryRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// What a finished command printed, and its exit status.
public struct CommandResult: Sendable {
  public var status: Int32
  public var stdout: String
  public var stderr: String
}

/// Runs the real `capstan` binary in the repository root, as a user would. A run past
/// `timeout` seconds is killed (its status is then 9, the signal), so no test waits forever.
public func runCapstan(_ arguments: [String], timeout: TimeInterval = 300) throws -> CommandResult {
  try runProgram(try CapstanBinary.url(), arguments, timeout: timeout)
}

/// Runs a program (looked up on PATH through `/usr/bin/env` when `program` is a bare name) in
/// the repository root to its end, or kills it at `timeout` (its status is then 9).
public func runProgram(_ program: String, _ arguments: [String], timeout: TimeInterval = 300) throws
  -> CommandResult
{
  program.contains("/")
    ? try runProgram(URL(fileURLWithPath: program), arguments, timeout: timeout)
    : try runProgram(URL(fileURLWithPath: "/usr/bin/env"), [program] + arguments, timeout: timeout)
}

private func runProgram(_ executable: URL, _ arguments: [String], timeout: TimeInterval) throws
  -> CommandResult
{
  let process = Process()
  process.executableURL = executable
  process.arguments = arguments
  process.currentDirectoryURL = repositoryRoot
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  let pid = process.processIdentifier
  let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
  DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
  // Both pipes are read at once: a child that fills one while the other is read would block.
  let stderr = DataBox()
  let group = DispatchGroup()
  DispatchQueue.global().async(group: group) { stderr.data = err.fileHandleForReading.readDataToEndOfFile() }
  let stdout = out.fileHandleForReading.readDataToEndOfFile()
  group.wait()
  process.waitUntilExit()
  watchdog.cancel()
  return CommandResult(
    status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
    stderr: String(decoding: stderr.data, as: UTF8.self))
}

private final class DataBox: @unchecked Sendable {
  var data = Data()
}
