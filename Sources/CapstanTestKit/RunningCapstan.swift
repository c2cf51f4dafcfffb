import Foundation

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif
#if canImport(Glibc)
  import Glibc
#endif

/// A real `capstan run` process for end-to-end tests, with its state directory, audit log and
/// monitoring port.
public final class RunningCapstan: @unchecked Sendable {
  public let process = Process()
  public let stateDirectory: URL
  public let port: Int
  public let output: URL

  public var auditLog: URL { stateDirectory.appendingPathComponent("audit.jsonl") }

  public init(policy: URL, stateDirectory: URL, extraArguments: [String] = []) throws {
    self.stateDirectory = stateDirectory
    self.port = try freePort()
    self.output = stateDirectory.deletingLastPathComponent().appendingPathComponent(
      "capstan-\(UUID().uuidString.prefix(8)).log")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    process.executableURL = try CapstanBinary.url()
    process.arguments =
      ["run", policy.path, "--state-dir", stateDirectory.path, "--listen", "127.0.0.1:\(port)"]
      + extraArguments
    var environment = ProcessInfo.processInfo.environment
    environment["CAPSTAN_LOG_LEVEL"] = "info"
    process.environment = environment
    let log = try FileHandle(forWritingTo: output)
    process.standardOutput = log
    process.standardError = log
    try process.run()
  }

  /// Everything the process has logged so far.
  public var log: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

  /// The audit records written so far, parsed.
  public func auditRecords() -> [[String: Any]] {
    guard let text = try? String(contentsOf: auditLog, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  public func records(event: String) -> [[String: Any]] {
    auditRecords().filter { $0["event"] as? String == event }
  }

  public func get(_ path: String) async -> (status: Int, body: String)? {
    guard let url = URL(string: "http://127.0.0.1:\(port)\(path)"),
      let (data, response) = try? await URLSession.shared.data(from: url)
    else { return nil }
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
  }

  /// The value of one Prometheus sample line, such as `capstan_replicas{process="w",state="current"}`.
  public func metric(_ series: String) async -> Double? {
    guard let body = await get("/metrics")?.body else { return nil }
    for line in body.split(separator: "\n") where line.hasPrefix(series + " ") {
      return Double(line.dropFirst(series.count + 1))
    }
    return nil
  }

  public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

  /// Waits for the process to exit and returns its status, or nil if it has not exited in time.
  public func waitForExit(timeout: TimeInterval = 20) async -> Int32? {
    let exited = await eventually(timeout: timeout) { !self.process.isRunning }
    return exited ? process.terminationStatus : nil
  }

  deinit {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
  }
}

/// A TCP socket bound to a free port on loopback; with `listen`, connections to it open but are
/// never answered, since nothing accepts them.
public func loopbackSocket(listen backlog: Int32? = nil) throws -> (descriptor: Int32, port: Int) {
  let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = 0
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let bound = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
  }
  guard bound == 0 else {
    close(descriptor)
    throw CapstanBinary.NotBuilt(searched: ["no free port on loopback: bind failed"])
  }
  if let backlog { listen(descriptor, backlog) }
  _ = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
  }
  return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}

/// A TCP port on loopback that nothing listens on right now.
public func freePort() throws -> Int {
  let (descriptor, port) = try loopbackSocket()
  close(descriptor)
  return port
}

/// Whether something accepts connections on a loopback port.
public func acceptsConnections(port: Int) -> Bool {
  let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  defer { close(descriptor) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = UInt16(port).bigEndian
  return withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
    }
  }
}
