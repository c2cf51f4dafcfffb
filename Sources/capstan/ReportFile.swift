import ArgumentParser
import CapstanReplay
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// `--report FILE.html`: the folder is proved writable before the run (a temporary file is
/// made beside the report), and the report is written whole at the end and renamed over
/// FILE, so no run is wasted on a path that cannot be written, and no reader ever sees half a
/// report.
struct ReportFile {
  let path: String
  let temporary: String

  static func prepare(_ path: String?) throws -> ReportFile? {
    guard let path else { return nil }
    let url = URL(fileURLWithPath: path)
    let temporary = url.deletingLastPathComponent()
      .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp").path
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      printError(
        "\(path): error: cannot write the report here (\(String(cString: strerror(errno)))): give --report a path in a folder you can write"
      )
      throw ExitCode(1)
    }
    close(descriptor)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
      unlink(temporary)
      printError("\(path): error: is a folder: give --report a file name such as report.html")
      throw ExitCode(1)
    }
    return ReportFile(path: path, temporary: temporary)
  }

  func write(_ html: String) throws {
    do {
      try Data(html.utf8).write(to: URL(fileURLWithPath: temporary))
      guard rename(temporary, path) == 0 else {
        throw CocoaError(
          .fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: String(cString: strerror(errno))])
      }
    } catch {
      discard()
      printError("\(path): error: cannot write the report: \(error)")
      throw ExitCode(1)
    }
  }

  /// After a run that failed: no report, and no temporary file left behind.
  func discard() { unlink(temporary) }
}
