import CapstanCore
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
    var outputPipe: [Int32] = [-1, -1]
    var errorPipe: [Int32] = [-1, -1]
    guard pipe(&outputPipe) == 0, pipe(&errorPipe) == 0 else {
      throw LaunchError(description: "cannot make pipes for \(program): \(String(cString: strerror(errno)))")
    }
    // Ours only: the child gets its copies through dup2, which clears the flag.
    for descriptor in outputPipe + errorPipe { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, outputPipe[1], STDOUT_FILENO)
    posix_spawn_file_actions_adddup2(&actions, errorPipe[1], STDERR_FILENO)
    if let workingDirectory {
      guard let addChdir = Self.addChdir else {
        throw LaunchError(
          description:
            "this C library cannot start a program in another directory (it needs glibc 2.29 or later)")
      }
      _ = addChdir(&actions, workingDirectory.path)
    }
    var attributes = Self.cleanSignalAttributes()
    defer { posix_spawnattr_destroy(&attributes) }
    // Its own process group, so the deadline reaches what it starts too (a `cmd &` that keeps
    // the output pipe open would otherwise hold the read, and the tick, forever).
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(
      &attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

    let variables = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
    var arguments = argv.map { strdup($0) } + [nil]
    var environmentPointers = variables.map { strdup($0) } + [nil]
    defer {
      arguments.forEach { free($0) }
      environmentPointers.forEach { free($0) }
    }
    var pid: pid_t = 0
    var spawned = posix_spawn(&pid, executable.path, &actions, &attributes, &arguments, &environmentPointers)
    // A program being written as it starts fails with ETXTBSY ("text file busy"), for as long as
    // some other child still holds the writer's descriptor: a moment. Try again briefly.
    for attempt in 1..<5 where spawned == ETXTBSY {
      try? await Task.sleep(nanoseconds: UInt64(attempt) * 50_000_000)
      spawned = posix_spawn(&pid, executable.path, &actions, &attributes, &arguments, &environmentPointers)
    }
    close(outputPipe[1])
    close(errorPipe[1])
    guard spawned == 0 else {
      close(outputPipe[0])
      close(errorPipe[0])
      throw LaunchError(
        description:
          "the system refused to start \(executable.path) (\(String(cString: strerror(spawned)))): is it a program, with a #! line if it is a script?"
      )
    }
    let deadline = Date().addingTimeInterval(timeout)
    // Reading stops at the deadline (and a little after, for what was already written), or soon
    // after the program exits, whoever still holds the pipe.
    let readDeadline = ReadDeadline(deadline.addingTimeInterval(0.5))
    async let stdout = drain(outputPipe[0], until: readDeadline)
    async let stderr = drain(errorPipe[0], until: readDeadline)

    var status: Int32 = 0
    var timedOut = false
    while waitpid(pid, &status, WNOHANG) == 0 {
      if !timedOut && Date() >= deadline {
        timedOut = true
        kill(-pid, SIGTERM)
        try? await Task.sleep(nanoseconds: 200_000_000)
        if waitpid(pid, &status, WNOHANG) == pid { break }
        kill(-pid, SIGKILL)
      }
      try? await Task.sleep(nanoseconds: 5_000_000)
    }
    // What it wrote before it exited is in the pipe already; a child that keeps the pipe open
    // gets a moment, not the whole timeout.
    readDeadline.shorten(to: Date().addingTimeInterval(0.2))
    let signalled = status & 0x7f
    let code = signalled == 0 ? (status >> 8) & 0xff : 128 + signalled
    let outcome = Outcome(status: code, stdout: await stdout, stderr: await stderr, timedOut: timedOut)
    // Whatever it left behind in its group goes with it: a signal read must not leak processes.
    kill(-pid, SIGKILL)
    return outcome
  }

  /// Spawn attributes that start a program with every signal at its default and none blocked:
  /// under `capstan run` SIGTERM, SIGINT and SIGHUP are ignored to be trapped, and an ignored
  /// signal stays ignored across exec. The caller destroys them.
  public static func cleanSignalAttributes() -> posix_spawnattr_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigdefault(&attributes, &all)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    return attributes
  }

  /// glibc's posix_spawn_file_actions_addchdir_np, a GNU extension Swift's Glibc module leaves out.
  private typealias AddChdir =
    @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
  private static let addChdir: AddChdir? = dlsym(
    UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np"
  )
  .map { unsafeBitCast($0, to: AddChdir.self) }

  /// A deadline the waiting side may bring forward while the reading side checks it.
  final class ReadDeadline: @unchecked Sendable {
    private let lock = NSLock()
    private var date: Date
    init(_ date: Date) { self.date = date }
    var value: Date { lock.withLock { date } }
    func shorten(to earlier: Date) { lock.withLock { date = min(date, earlier) } }
  }

  /// Reads a pipe to its end, or until the deadline, off the cooperative pool, then closes it.
  private static func drain(_ descriptor: Int32, until deadline: ReadDeadline) async -> String {
    await withCheckedContinuation { continuation in
      DispatchQueue.global().async {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
          // Past the deadline, what is already in the pipe is still taken, without waiting:
          // on a loaded machine this reader may start after the deadline has passed.
          let left = deadline.value.timeIntervalSinceNow
          var watch = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
          let ready = poll(&watch, 1, left <= 0 ? 0 : Int32(min(left, 0.1) * 1000) + 1)
          if ready < 0 && errno == EINTR { continue }
          if ready <= 0 {
            if left <= 0 || ready < 0 { break }
            continue
          }
          let count = read(descriptor, &buffer, buffer.count)
          if count < 0 && errno == EINTR { continue }
          if count <= 0 { break }
          if data.count < outputLimit {
            data.append(contentsOf: buffer.prefix(min(count, outputLimit - data.count)))
          }
          // A writer that never stops (a `yes` left behind) ends the reading once it is late.
          if left <= 0 && data.count >= outputLimit { break }
        }
        close(descriptor)
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
      let url = directory.map { $0.resolving(program) } ?? URL(fileURLWithPath: program)
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
