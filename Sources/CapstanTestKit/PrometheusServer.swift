import CapstanHTTP
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A real Prometheus (Debian's package) on a free loopback port, scraping itself every second,
/// with its data in a scratch folder. Stopped when released. With `tls`, it serves HTTPS with a
/// self-signed certificate for 127.0.0.1 (`caFile`), through its own web configuration file.
public final class PrometheusServer: @unchecked Sendable {
  public let port: Int
  public let folder: URL
  public let tls: Bool
  private let process = Process()

  public var url: String { "\(tls ? "https" : "http")://127.0.0.1:\(port)" }
  /// The certificate to trust, with `tls`.
  public var caFile: String { folder.appendingPathComponent("cert.pem").path }

  public struct Unavailable: Error, CustomStringConvertible {
    public var description: String
  }

  /// - Parameters:
  ///   - history: OpenMetrics text (ending in `# EOF`) written into the database with
  ///     `promtool tsdb create-blocks-from openmetrics` before it starts, so range queries see a
  ///     past that was never scraped.
  ///   - targets: `host:port` addresses scraped every second as job `targets`, besides itself;
  ///     one that does not answer yet has `up` 0 and no other series.
  public init(tls: Bool = false, history: String? = nil, targets: [String] = []) throws {
    self.tls = tls
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
    let scrapeTLS = tls ? "\n    scheme: https\n    tls_config: {ca_file: cert.pem}" : ""
    let configuration = """
      global:
        scrape_interval: 1s
      scrape_configs:
        - job_name: self\(scrapeTLS)
          static_configs:
            - targets: ['127.0.0.1:\(port)']
      """
      + (targets.isEmpty
        ? ""
        : """

          - job_name: targets
            static_configs:
              - targets: [\(targets.map { "'\($0)'" }.joined(separator: ", "))]
        """)
    try Data(configuration.utf8).write(to: folder.appendingPathComponent("prometheus.yml"))
    if let history { try Self.createBlocks(history, in: folder) }
    var arguments = [
      "--config.file=prometheus.yml", "--storage.tsdb.path=data", "--web.listen-address=127.0.0.1:\(port)",
    ]
    if tls {
      try makeCertificate()
      try Data("tls_server_config: {cert_file: cert.pem, key_file: key.pem}\n".utf8)
        .write(to: folder.appendingPathComponent("web.yml"))
      arguments.append("--web.config.file=web.yml")
    }
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    process.currentDirectoryURL = folder
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    process.standardInput = FileHandle.nullDevice
    try process.run()
  }

  private static func createBlocks(_ openMetrics: String, in folder: URL) throws {
    guard
      let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first(where: {
        FileManager.default.isExecutableFile(atPath: $0)
      })
    else {
      throw Unavailable(
        description: "promtool is not installed: run scripts/install-deps test (Debian's prometheus package)")
    }
    let input = folder.appendingPathComponent("history.om")
    try Data(openMetrics.utf8).write(to: input)
    let tool = Process()
    tool.executableURL = URL(fileURLWithPath: promtool)
    tool.arguments = [
      "tsdb", "create-blocks-from", "openmetrics", input.path, folder.appendingPathComponent("data").path,
    ]
    tool.standardOutput = FileHandle.nullDevice
    tool.standardError = FileHandle.nullDevice
    try tool.run()
    tool.waitUntilExit()
    guard tool.terminationStatus == 0 else {
      throw Unavailable(
        description: "promtool could not write the history blocks (exit \(tool.terminationStatus))")
    }
  }

  /// Ready, and its first scrape stored, so `up` has a sample.
  public func ready(timeout: TimeInterval = 30) async -> Bool {
    await eventually(timeout: timeout, every: 0.2) {
      let request = HTTPRequest(
        url: "\(self.url)/api/v1/query?query=up", timeout: 2, ca: self.tls ? .file(self.caFile) : nil)
      guard let response = try? await CurlHTTPClient.get(request) else { return false }
      return String(decoding: response.body, as: UTF8.self).contains("\"value\"")
    }
  }

  private func makeCertificate() throws {
    let openssl = Process()
    openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    openssl.arguments = [
      "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
      "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    ]
    openssl.currentDirectoryURL = folder
    openssl.standardOutput = FileHandle.nullDevice
    openssl.standardError = FileHandle.nullDevice
    try openssl.run()
    while openssl.isRunning { usleep(10_000) }
    guard openssl.terminationStatus == 0 else {
      throw Unavailable(description: "openssl could not make a certificate: run scripts/install-deps test")
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
