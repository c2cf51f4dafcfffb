import CapstanTestKit
import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `--report` and `tune --out` write a new path or replace a regular file, never anything else,
/// and leave no temporary file behind on any exit.
@Suite("Output files")
struct OutputFileTests {
  static let simulate = [
    "simulate", "examples/simulate/jobs.yaml", "--trace", "examples/simulate/jobs-burst.csv",
  ]

  /// The names in a folder, to find a temporary file left behind.
  static func names(_ folder: URL) throws -> Set<String> {
    Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
  }

  @Test("a FIFO, a device, a symbolic link and a folder at the path are refused and left as they are")
  func notRegular() throws {
    let folder = try scratchDirectory("output")
    defer { try? FileManager.default.removeItem(at: folder) }
    let fifo = folder.appendingPathComponent("pipe.html")
    #expect(mkfifo(fifo.path, 0o644) == 0)
    let target = folder.appendingPathComponent("target.html")
    try Data("keep".utf8).write(to: target)
    let link = folder.appendingPathComponent("link.html")
    try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
    let cases: [(path: String, kind: String)] = [
      (fifo.path, "is a FIFO"), ("/dev/null", "is a device"), (link.path, "is a symbolic link"),
      (folder.path, "is a folder"),
    ]
    for (path, kind) in cases {
      let result = try runCapstan(Self.simulate + ["--report", path])
      #expect(result.status == 1, "\(path)")
      #expect(
        result.stderr.contains("\(path): error: \(kind): --report writes a new file"), "\(result.stderr)")
    }
    let tune = try runCapstan(
      ["tune"] + Self.simulate.dropFirst() + ["--candidates", "2", "--out", fifo.path])
    #expect(tune.status == 1 && tune.stderr.contains("is a FIFO: --out writes a new file"))
    var status = stat()
    #expect(lstat(fifo.path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFIFO)
    #expect(lstat(link.path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFLNK)
    #expect(try String(contentsOf: target, encoding: .utf8) == "keep")
    #expect(try Self.names(folder) == ["pipe.html", "target.html", "link.html"])
  }

  @Test(
    "a run that fails after the report was prepared leaves no temporary file; a name as long as a name may be is written"
  )
  func noTemporaryLeft() throws {
    let folder = try scratchDirectory("output")
    defer { try? FileManager.default.removeItem(at: folder) }
    let report = folder.appendingPathComponent("report.html")
    // The audit log cannot be opened (a folder), after the report's folder was proved writable.
    let failed = try runCapstan(Self.simulate + ["--report", report.path, "--audit-log", folder.path])
    #expect(failed.status != 0)
    #expect(try Self.names(folder).isEmpty)
    let long = folder.appendingPathComponent(String(repeating: "r", count: 250) + ".html")
    let written = try runCapstan(Self.simulate + ["--report", long.path])
    #expect(written.status == 0, "\(written.stderr)")
    #expect(try Self.names(folder) == [long.lastPathComponent])
  }
}
