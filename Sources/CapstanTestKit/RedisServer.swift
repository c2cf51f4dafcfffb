import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A real redis-server (Debian's package) on a free loopback port, without persistence, and
/// redis-cli to put data in it. Stopped when released.
public final class RedisServer: @unchecked Sendable {
  public private(set) var port: Int
  let password: String?
  private var process: Process?

  public struct Unavailable: Error, CustomStringConvertible {
    public var description: String
  }

  public init(password: String? = nil) throws {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else {
      throw Unavailable(description: "redis-server is not installed: run scripts/install-deps test")
    }
    self.password = password
    self.port = try freePort()
    try start()
  }

  public var url: String { "redis://127.0.0.1:\(port)/0" }

  /// Starts (again) on the same port.
  public func start() throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
    process.arguments =
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
      + (password.map { ["--requirepass", $0] } ?? [])
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    process.standardInput = FileHandle.nullDevice
    try process.run()
    self.process = process
  }

  public func ready() async -> Bool { await eventually { acceptsConnections(port: self.port) } }

  public func stop() async {
    if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    _ = await eventually { !acceptsConnections(port: self.port) }
  }

  /// Runs one command through redis-cli and returns its output.
  @discardableResult
  public func cli(_ arguments: String...) throws -> String {
    let cli = Process()
    cli.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
    cli.arguments =
      ["-p", String(port)] + (password.map { ["--no-auth-warning", "-a", $0] } ?? []) + arguments
    let out = Pipe()
    cli.standardOutput = out
    cli.standardError = FileHandle.nullDevice
    try cli.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    while cli.isRunning { usleep(1000) }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  deinit {
    if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
  }
}
