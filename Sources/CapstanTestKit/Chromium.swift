import Foundation

/// Debian's chromium, headless: opens a page, runs its scripts, and gives back the DOM it ended
/// with and every console message it wrote.
public enum Chromium {
  public struct Unavailable: Error, CustomStringConvertible {
    public var description: String
  }

  public struct Page: Sendable {
    public var dom: String
    /// Lines chromium logged for the page's console (errors, warnings, logs).
    public var console: [String]
  }

  public static func load(_ file: URL, timeout: TimeInterval = 120) throws -> Page {
    guard
      let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/local/bin/chromium"].first(
        where: {
          FileManager.default.isExecutableFile(atPath: $0)
        })
    else {
      throw Unavailable(
        description: "chromium is not installed: run scripts/install-deps test (Debian's chromium)")
    }
    let profile = try scratchDirectory("chromium")
    defer { try? FileManager.default.removeItem(at: profile) }
    let out = profile.appendingPathComponent("dom.html")
    let err = profile.appendingPathComponent("stderr.log")
    try Data().write(to: out)
    try Data().write(to: err)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    // No sandbox: tests may run as root, where chromium's sandbox refuses to start.
    process.arguments = [
      "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)",
      "--enable-logging=stderr", "--v=0", "--dump-dom", file.absoluteString,
    ]
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(50_000) }
    if process.isRunning {
      process.terminate()
      process.waitUntilExit()
      throw Unavailable(description: "chromium did not finish loading \(file.path) within \(Int(timeout))s")
    }
    let dom = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
    let log = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
    return Page(
      dom: dom, console: log.split(separator: "\n").map(String.init).filter { $0.contains(":CONSOLE") })
  }
}
