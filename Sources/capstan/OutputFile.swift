import ArgumentParser
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A file a command writes at its end (`--report FILE.html`, `tune --out FILE`): the folder is
/// proved writable before the run, so no run is wasted on a path that cannot be written; the
/// content is written whole to a temporary file beside it and renamed over the path, so no
/// reader sees half of it. Only a new path or a regular file is written: a FIFO, a device, a
/// folder or a symbolic link at the path is refused, never replaced. The temporary file exists
/// only while the content is written.
struct OutputFile {
  let path: String
  /// The option that named it, for messages.
  let option: String

  /// - Throws: `ExitCode(1)` after saying why, for a path that cannot be written.
  static func prepare(_ path: String?, option: String) throws -> OutputFile? {
    guard let path else { return nil }
    let file = OutputFile(path: path, option: option)
    try file.checkTarget()
    // Proved writable by making (and at once removing) a file beside it.
    let probe = file.temporaryPath()
    let descriptor = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw file.failure(
        "cannot write here (\(String(cString: strerror(errno)))): give \(option) a path in a folder you can write"
      )
    }
    close(descriptor)
    unlink(probe)
    return file
  }

  func write(_ text: String) throws {
    try checkTarget()
    let temporary = temporaryPath()
    do {
      try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
      guard rename(temporary, path) == 0 else {
        throw CocoaError(
          .fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: String(cString: strerror(errno))])
      }
    } catch {
      unlink(temporary)
      throw failure("cannot write: \(error)")
    }
  }

  /// A new path, or a regular file to replace.
  private func checkTarget() throws {
    var status = stat()
    guard lstat(path, &status) == 0 else { return }
    let kind: String
    switch status.st_mode & S_IFMT {
    case S_IFREG: return
    case S_IFDIR: kind = "a folder"
    case S_IFLNK: kind = "a symbolic link"
    case S_IFIFO: kind = "a FIFO"
    case S_IFCHR, S_IFBLK: kind = "a device"
    default: kind = "not a regular file"
    }
    throw failure(
      "is \(kind): \(option) writes a new file or replaces a regular one; give it a file name such as \(option == "--report" ? "report.html" : "tuned.yaml")"
    )
  }

  /// Beside the path, with a short name of its own, so a path whose name is as long as a name
  /// may be still has room for it.
  private func temporaryPath() -> String {
    URL(fileURLWithPath: path).deletingLastPathComponent()
      .appendingPathComponent(".capstan-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp").path
  }

  /// Says what went wrong, and the exit status to end the command with.
  private func failure(_ message: String) -> ExitCode {
    printError("\(path): error: \(message)")
    return ExitCode(1)
  }
}
