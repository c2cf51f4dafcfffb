import Foundation

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif
#if canImport(Glibc)
  import Glibc
#endif

/// A real Prometheus (Debian's package) on a free loopback port, scraping itself every second,
/// with its data in a scratch folder. Stopped when released.
public final class PrometheusServer: @unchecked Sendable {
  public let port: Int
  public let folder: URL
  private let process = Process()

  public var url: String { "http://127.0.0.1:\(port)" }

  public struct Unavailable: Error, CustomStringConvertible {
    public var description: String
  }

  public init() throws {
    guard
      let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].first(where: {
        FileManager.default.isExecutableFile(atPath: $0)
      })
    else {
      throw Unavailable(
        description:
          "prometheus is not installed: run scripts/install-deps test (Debian's prometheus package)")
    }
    port = try freePort()
    folder = try scratchDirectory("prometheus")
    let configuration = """
      global:
        scrape_interval: 1s
      scrape_configs:
        - job_name: self
          static_configs:
            - targets: ['127.0.0.1:\(port)']
      """
    try Data(configuration.utf8).write(to: folder.appendingPathComponent("prometheus.yml"))
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = [
      "--config.file=prometheus.yml", "--storage.tsdb.path=data", "--web.listen-address=127.0.0.1:\(port)",
    ]
    process.currentDirectoryURL = folder
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    process.standardInput = FileHandle.nullDevice
    try process.run()
  }

  /// Ready, and its first scrape stored, so `up` has a sample.
  public func ready(timeout: TimeInterval = 30) async -> Bool {
    await eventually(timeout: timeout, every: 0.2) {
      guard let url = URL(string: "\(self.url)/api/v1/query?query=up"),
        let (data, _) = try? await URLSession.shared.data(from: url)
      else { return false }
      return String(decoding: data, as: UTF8.self).contains("\"value\"")
    }
  }

  public func stop() {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
  }

  deinit {
    stop()
    try? FileManager.default.removeItem(at: folder)
  }
}
