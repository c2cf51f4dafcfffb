import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Runs a program (never through a shell) with a deadline, capturing its output.
public enum ProgramRunner {
  public struct Outcome: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// The program ran past its deadline and was killed.
    public var timedOut: Bool
  }

  public struct LaunchError: Error, CustomStringConvertible {
    public var description: String
  }

  /// Output beyond this is dropped: a signal is one number, a hook's message a few lines.
  static let outputLimit = 64 * 1024

  public static func run(
    _ argv: [String], workingDirectory: URL? = nil, environment: [String: String]? = nil,
    timeout: TimeInterval
  ) async throws -> Outcome {
    guard let program = argv.first else { throw LaunchError(description: "no program given") }
    guard let executable = locate(program, from: workingDirectory) else {
      if program.contains("/") && FileManager.default.fileExists(atPath: program) {
        throw LaunchError(
          description:
            "'\(program)' is not an executable file: chmod +x it, or run it through its interpreter")
      }
      throw LaunchError(
        description: "'\(program)' was not found (looked in PATH for a bare name); give its full path")
    }
    let process = Process()
    process.executableURL = executable
    process.arguments = Array(argv.dropFirst())
    if let workingDirectory { process.currentDirectoryURL = workingDirectory }
    if let environment { process.environment = environment }
    process.standardInput = FileHandle.nullDevice
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err

    let exited = AsyncStream<Void>.makeStream()
    process.terminationHandler = { _ in exited.continuation.finish() }
    do {
      try process.run()
    } catch {
      throw LaunchError(
        description:
          "the system refused to start \(executable.path): is it a program, with a #! line if it is a script?"
      )
    }
    async let stdout = drain(out.fileHandleForReading)
    async let stderr = drain(err.fileHandleForReading)

    let timedOut = await withTaskGroup(of: Bool.self) { group in
      group.addTask {
        for await _ in exited.stream {}
        return false
      }
      group.addTask {
        try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
        return true
      }
      let first = await group.next()!
      group.cancelAll()
      return first
    }
    if timedOut {
      kill(process.processIdentifier, SIGTERM)
      try? await Task.sleep(nanoseconds: 200_000_000)
      if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
    // Not waitUntilExit, which spins a run loop async code never runs; not the stream, which
    // its cancelled first reader has finished.
    while process.isRunning { try? await Task.sleep(nanoseconds: 10_000_000) }
    return Outcome(
      status: process.terminationStatus, stdout: await stdout, stderr: await stderr, timedOut: timedOut)
  }

  /// Reads a pipe to its end off the cooperative pool, since the read blocks.
  private static func drain(_ handle: FileHandle) async -> String {
    await withCheckedContinuation { continuation in
      DispatchQueue.global().async {
        var data = Data()
        while true {
          let chunk = handle.availableData
          if chunk.isEmpty { break }
          if data.count < outputLimit { data.append(chunk.prefix(outputLimit - data.count)) }
        }
        continuation.resume(returning: String(decoding: data, as: UTF8.self))
      }
    }
  }

  /// A regular file with an execute bit. `isExecutableFile` says yes to any file for root.
  static func isRunnable(_ url: URL) -> Bool {
    var info = stat()
    guard stat(url.path, &info) == 0 else { return false }
    return (info.st_mode & S_IFMT) == S_IFREG && (info.st_mode & 0o111) != 0
  }

  /// A path with a slash is taken as it is (relative to the working directory); a bare name is
  /// searched in PATH, as a shell would.
  public static func locate(_ program: String, from directory: URL?) -> URL? {
    if program.contains("/") {
      let url =
        program.hasPrefix("/") || directory == nil
        ? URL(fileURLWithPath: program) : directory!.appendingPathComponent(program)
      return isRunnable(url) ? url : nil
    }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for folder in path.split(separator: ":") {
      let candidate = URL(fileURLWithPath: String(folder)).appendingPathComponent(program)
      if isRunnable(candidate) { return candidate }
    }
    return nil
  }
}
