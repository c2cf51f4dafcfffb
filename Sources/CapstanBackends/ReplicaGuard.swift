import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Runs one replica's program and stands between it and Capstan, so that no replica outlives
/// the supervisor unnoticed. The guard leads its own process group, and the program and anything
/// it starts stay in it (the guard spawns with `posix_spawn` rather than `Process`, which would
/// give the program a group of its own). It holds a pipe from Capstan on standard input: when
/// Capstan dies, by any signal including SIGKILL, the pipe closes and the guard drains the group.
/// SIGTERM drains it too: SIGTERM to the group, then SIGKILL after the drain timeout. The guard
/// exits with the program's status.
public enum ReplicaGuard {
  public static func run(argv: [String], drainTimeout: TimeInterval) -> Never {
    setpgid(0, 0)
    guard let program = argv.first else {
      say("capstan replica-guard: no program given\n")
      exit(2)
    }
    let resolved = program.contains("/") ? program : (which(program) ?? program)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    // The program gets /dev/null, not the lifeline: only the guard watches it.
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
    var arguments = argv.map { strdup($0) } + [nil]
    defer { arguments.forEach { free($0) } }
    var child: pid_t = 0
    let spawned = posix_spawn(&child, resolved, &actions, nil, &arguments, environ)
    posix_spawn_file_actions_destroy(&actions)
    guard spawned == 0 else {
      say("capstan replica-guard: cannot start \(resolved): \(String(cString: strerror(spawned)))\n")
      exit(127)
    }
    // Only now: an ignored signal stays ignored across exec, and the program must hear SIGTERM.
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    signal(SIGPIPE, SIG_IGN)

    let queue = DispatchQueue(label: "capstan.replica-guard")
    nonisolated(unsafe) var draining = false
    let drain = {
      guard !draining else { return }
      draining = true
      kill(-getpgrp(), SIGTERM)
      queue.asyncAfter(deadline: .now() + drainTimeout) {
        say(
          "capstan replica-guard: \(program) still running after the \(Int(drainTimeout))s drain timeout: killing it\n"
        )
        kill(-getpgrp(), SIGKILL)
      }
    }
    let terminate = DispatchSource.makeSignalSource(signal: SIGTERM, queue: queue)
    terminate.setEventHandler(handler: drain)
    terminate.resume()
    let lifeline = DispatchSource.makeReadSource(fileDescriptor: STDIN_FILENO, queue: queue)
    lifeline.setEventHandler {
      var byte: UInt8 = 0
      if read(STDIN_FILENO, &byte, 1) <= 0 {
        lifeline.cancel()
        say("capstan replica-guard: the supervisor is gone: stopping \(program)\n")
        drain()
      }
    }
    lifeline.resume()
    let programPID = child
    Thread.detachNewThread {
      var status: Int32 = 0
      while waitpid(programPID, &status, 0) < 0 && errno == EINTR {}
      // Exit as the program did: its code, or 128 + the signal that ended it.
      let signalled = status & 0x7f
      exit(signalled == 0 ? (status >> 8) & 0xff : 128 + signalled)
    }
    dispatchMain()
  }

  /// Into the replica's log, which is the guard's standard error.
  private static func say(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
  }

  private static func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
  }
}
