import CapstanRuntime
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Runs one replica's program and stands between it and Capstan, so that no replica outlives
/// the supervisor unnoticed. The guard leads its own process group, and the program and anything
/// it starts stay in it. It holds a pipe from Capstan on standard input: when Capstan dies, by
/// any signal including SIGKILL, the pipe closes and the guard drains the group. SIGTERM drains
/// it too: SIGTERM to the group, then SIGKILL after the drain timeout. The guard exits with the
/// program's status.
///
/// It is one thread with a poll loop on purpose: no Dispatch, no Foundation threads, nothing
/// that can fail in the one process whose job is to clean up after failures.
/// Set by the guard's SIGTERM handler, read by its loop; a signal handler can touch nothing else.
nonisolated(unsafe) private var terminationRequested: sig_atomic_t = 0
/// Removed on every way out but SIGKILL; a stale one names a pid that is gone or not a guard.
nonisolated(unsafe) private var pidFilePath: String?

public enum ReplicaGuard {
  public static func run(argv: [String], drainTimeout: TimeInterval, pidFile: String? = nil) -> Never {
    setpgid(0, 0)
    // Orphans of the replica's processes come to the guard rather than to init, so one that
    // left the group (setsid) is still found and stopped with the rest.
    becomeSubreaper()
    if let pidFile {
      let text = "\(getpid())\n"
      let descriptor = open(pidFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
      if descriptor >= 0 {
        _ = text.withCString { write(descriptor, $0, strlen($0)) }
        close(descriptor)
        pidFilePath = pidFile
      }
    }
    guard let program = argv.first else {
      say("capstan replica-guard: no program given\n")
      leave(2)
    }
    // A handler that only sets a flag: whichever thread the runtime has takes the signal, and
    // the loop below sees the flag. (Blocking it would cover this thread alone.)
    signal(SIGTERM) { _ in terminationRequested = 1 }
    signal(SIGINT, SIG_IGN)
    signal(SIGHUP, SIG_IGN)
    signal(SIGPIPE, SIG_IGN)

    let child = spawn(argv, program: program)
    var drainDeadline: Date?
    var lifelineOpen = true
    while true {
      var status: Int32 = 0
      // Reap the program, and any orphan that came to the guard and has ended.
      var reaped = waitpid(-1, &status, WNOHANG)
      while reaped > 0 && reaped != child { reaped = waitpid(-1, &status, WNOHANG) }
      if reaped == child {
        // What it leaves behind goes with it. Then exit as it did: its code, or 128 + its signal.
        signalDescendants(SIGKILL)
        let signalled = status & 0x7f
        leave(signalled == 0 ? (status >> 8) & 0xff : 128 + signalled)
      }
      if terminationRequested != 0, drainDeadline == nil {
        drainDeadline = startDrain(program, drainTimeout)
      }
      if lifelineOpen {
        var watch = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        if poll(&watch, 1, 100) > 0 {
          var byte: UInt8 = 0
          if watch.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 || read(STDIN_FILENO, &byte, 1) <= 0 {
            lifelineOpen = false
            say("capstan replica-guard: the supervisor is gone: stopping \(program)\n")
            if drainDeadline == nil { drainDeadline = startDrain(program, drainTimeout) }
          }
        }
      } else {
        usleep(100_000)
      }
      if let deadline = drainDeadline, Date() >= deadline {
        say(
          "capstan replica-guard: \(program) still running after the \(Int(drainTimeout))s drain timeout: killing it\n"
        )
        signalDescendants(SIGKILL)
      }
    }
  }

  private static func startDrain(_ program: String, _ timeout: TimeInterval) -> Date {
    signalDescendants(SIGTERM)
    return Date().addingTimeInterval(timeout)
  }

  /// prctl(PR_SET_CHILD_SUBREAPER, 1): variadic in C, so Swift's Glibc module leaves it out.
  private static func becomeSubreaper() {
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    let setChildSubreaper: Int32 = 36
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prctl") else { return }
    _ = unsafeBitCast(symbol, to: Prctl.self)(setChildSubreaper, 1, 0, 0, 0)
  }

  /// Every process below the guard, found through /proc's parent links: the program's group
  /// and whatever left it (as a subreaper the guard inherits their orphans).
  private static func signalDescendants(_ signal: Int32) {
    let me = getpid()
    var children: [pid_t: [pid_t]] = [:]
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for entry in entries {
      guard let pid = pid_t(entry), let stat = FileManager.default.contents(atPath: "/proc/\(entry)/stat"),
        let close = stat.lastIndex(of: UInt8(ascii: ")"))
      else { continue }
      // After "pid (comm) ": the state, then the parent's pid.
      let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " "), maxSplits: 2)
      guard fields.count >= 2, let parent = pid_t(String(decoding: fields[1], as: UTF8.self)) else {
        continue
      }
      children[parent, default: []].append(pid)
    }
    var queue = children[me] ?? []
    var seen: Set<pid_t> = [me]
    while let pid = queue.popLast() {
      guard seen.insert(pid).inserted else { continue }
      kill(pid, signal)
      queue += children[pid] ?? []
    }
  }

  /// Starts the program in the guard's group with every signal at its default and none blocked,
  /// and /dev/null, not the lifeline, on its standard input.
  private static func spawn(_ argv: [String], program: String) -> pid_t {
    let resolved = program.contains("/") ? program : (which(program) ?? program)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
    var attributes = ProgramRunner.cleanSignalAttributes()
    var arguments = argv.map { strdup($0) } + [nil]
    defer { arguments.forEach { free($0) } }
    var child: pid_t = 0
    var spawned = posix_spawn(&child, resolved, &actions, &attributes, &arguments, environ)
    // ETXTBSY: the program is still open for writing somewhere (being deployed); it passes.
    for attempt in 1..<5 where spawned == ETXTBSY {
      usleep(useconds_t(attempt * 50_000))
      spawned = posix_spawn(&child, resolved, &actions, &attributes, &arguments, environ)
    }
    posix_spawn_file_actions_destroy(&actions)
    posix_spawnattr_destroy(&attributes)
    guard spawned == 0 else {
      say("capstan replica-guard: cannot start \(resolved): \(String(cString: strerror(spawned)))\n")
      leave(127)
    }
    return child
  }

  private static func leave(_ code: Int32) -> Never {
    if let pidFilePath { unlink(pidFilePath) }
    exit(code)
  }

  /// Whether a pid is a live replica guard: a pid file can outlive its guard (SIGKILL), and the
  /// pid can be reused.
  public static func isGuard(pid: pid_t) -> Bool {
    guard pid > 0, kill(pid, 0) == 0 || errno == EPERM,
      let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
    else { return false }
    return data.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "replica-guard" }
  }

  /// Into the replica's log, which is the guard's standard error.
  private static func say(_ text: String) {
    _ = text.withCString { write(STDERR_FILENO, $0, strlen($0)) }
  }

  private static func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
  }
}
