import CapstanTestKit
import Foundation
import Testing

@testable import CapstanCore
@testable import CapstanSignals

#if canImport(Glibc)
  import Glibc
#endif

/// A real server process on loopback, stopped when the test is done with it.
final class ServerProcess {
  let process = Process()
  let port: Int

  init(_ argv: [String], port: Int, directory: URL) throws {
    self.port = port
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = argv
    process.currentDirectoryURL = directory
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    process.standardInput = FileHandle.nullDevice
    try process.run()
  }

  func ready() async -> Bool {
    await eventually(timeout: 10) { acceptsConnections(port: port) }
  }

  deinit {
    // Not waitUntilExit: it spins a run loop, which a test's async context never runs.
    kill(process.processIdentifier, SIGKILL)
  }
}

/// Answers every GET with a JSON document, or 401 without `Authorization: Bearer sesame`.
let pythonServer = #"""
  import http.server, json, sys
  class Handler(http.server.SimpleHTTPRequestHandler):
      def do_GET(self):
          if self.path == "/secret":
              if self.headers.get("Authorization") != "Bearer sesame":
                  self.send_response(401); self.end_headers(); self.wfile.write(b"who are you?"); return
              body = json.dumps({"value": 11}).encode()
              self.send_response(200); self.send_header("Content-Type", "application/json")
              self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body); return
          if self.path == "/echo":
              body = ("bad request: Authorization was " + str(self.headers.get("Authorization"))).encode()
              self.send_response(500); self.send_header("Content-Length", str(len(body))); self.end_headers()
              self.wfile.write(body); return
          return super().do_GET()
      def log_message(self, *args): pass
  http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
  """#

@Suite("http_json signal", .serialized)
struct HTTPJSONSignalTests {
  static let document =
    #"{"data": {"queue": {"depth": 42}}, "items": [{"v": "3.5"}], "flag": true, "a/b": {"~x": 7}}"#

  func serve() async throws -> (ServerProcess, URL) {
    let folder = try scratchDirectory("http")
    try Data(Self.document.utf8).write(to: folder.appendingPathComponent("metrics.json"))
    try Data("<html>not json</html>".utf8).write(to: folder.appendingPathComponent("page.html"))
    try Data(pythonServer.utf8).write(to: folder.appendingPathComponent("server.py"))
    let port = try freePort()
    let server = try ServerProcess(["python3", "server.py", String(port)], port: port, directory: folder)
    #expect(await server.ready())
    return (server, folder)
  }

  /// The variables a bearer_token_env may name: handed to the reader, never set in this
  /// process, whose environment other tests read from other threads.
  static let environment = ["CAPSTAN_TEST_ECHO_TOKEN": "hunter2-token", "CAPSTAN_TEST_TOKEN": "sesame"]

  func signal(_ url: String, pointer: String, _ configure: (inout HTTPJSONSignalSettings) -> Void = { _ in })
    -> HTTPJSONSignal
  {
    var settings = HTTPJSONSignalSettings(
      endpoint: HTTPEndpointSettings(url: url, timeout: 2), pointer: pointer)
    configure(&settings)
    return HTTPJSONSignal(
      name: "h", settings: settings, baseDirectory: URL(fileURLWithPath: "/"), environment: Self.environment)
  }

  @Test("numbers at JSON pointers, escapes included")
  func pointers() async throws {
    let (server, folder) = try await serve()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = "http://127.0.0.1:\(server.port)/metrics.json"
    #expect(try await signal(url, pointer: "/data/queue/depth").read(now: Date()) == 42)
    #expect(try await signal(url, pointer: "/items/0/v").read(now: Date()) == 3.5)
    #expect(try await signal(url, pointer: "/a~1b/~0x").read(now: Date()) == 7)
  }

  @Test(
    "failures name the problem",
    arguments: [
      ("/metrics.json", "/flag", "/flag in the answer of URL is true, not a number"),
      ("/metrics.json", "/data/missing", "/data/missing is not there in the answer of URL"),
      ("/metrics.json", "/items/3", "/items/3 is not an index of a list of 1 in the answer of URL"),
      ("/metrics.json", "/data", "/data in the answer of URL is an object, not a number"),
      ("/page.html", "", "GET URL did not answer JSON"),
      ("/nothing.json", "/x", "GET URL answered 404"),
      ("/secret", "/value", "GET URL answered 401: who are you?"),
    ])
  func failures(path: String, pointer: String, message: String) async throws {
    let (server, folder) = try await serve()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = "http://127.0.0.1:\(server.port)\(path)"
    await #expect {
      try await signal(url, pointer: pointer).read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.hasPrefix(message.replacingOccurrences(of: "URL", with: url))
        == true
    }
  }

  @Test("neither a password in the URL nor a token the server echoes back reaches an error message")
  func secretsRedacted() async throws {
    let (server, folder) = try await serve()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = "http://scraper:pa55word@127.0.0.1:\(server.port)/echo"
    await #expect {
      try await signal(url, pointer: "/value") { $0.endpoint.bearerTokenEnv = "CAPSTAN_TEST_ECHO_TOKEN" }
        .read(
          now: Date())
    } throws: { error in
      let message = "\(error)"
      return message.contains("http://scraper:***@127.0.0.1") && message.contains("Authorization was ***")
        && !message.contains("pa55word") && !message.contains("hunter2-token")
    }
    let dead = try freePort()
    await #expect {
      try await signal("http://scraper:pa55word@127.0.0.1:\(dead)/x", pointer: "/v").read(now: Date())
    } throws: { error in
      "\(error)".contains("scraper:***@") && !"\(error)".contains("pa55word")
    }
  }

  @Test("bearer_token_env sends the token from the environment, and says so when it is unset")
  func bearerToken() async throws {
    let (server, folder) = try await serve()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = "http://127.0.0.1:\(server.port)/secret"
    #expect(
      try await signal(url, pointer: "/value") { $0.endpoint.bearerTokenEnv = "CAPSTAN_TEST_TOKEN" }.read(
        now: Date())
        == 11)
    await #expect(
      throws: SignalReadError(
        signal: "h", "the environment variable CAPSTAN_TEST_UNSET named by bearer_token_env is not set")
    ) {
      try await signal(url, pointer: "/value") { $0.endpoint.bearerTokenEnv = "CAPSTAN_TEST_UNSET" }.read(
        now: Date())
    }
  }

  @Test("TLS is verified by default; ca_file trusts a private CA")
  func tls() async throws {
    let folder = try scratchDirectory("https")
    defer { try? FileManager.default.removeItem(at: folder) }
    try Data(Self.document.utf8).write(to: folder.appendingPathComponent("metrics.json"))
    let made = try await CapstanRuntimeShim.run(
      [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
      ], in: folder)
    #expect(made == 0)
    let port = try freePort()
    let server = try ServerProcess(
      [
        "openssl", "s_server", "-quiet", "-accept", "127.0.0.1:\(port)", "-cert", "cert.pem", "-key",
        "key.pem", "-WWW",
      ],
      port: port, directory: folder)
    #expect(await server.ready())
    let url = "https://127.0.0.1:\(port)/metrics.json"
    await #expect {
      try await signal(url, pointer: "/data/queue/depth").read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.contains("the server's TLS certificate was not trusted") == true
    }
    let trusted = signal(url, pointer: "/data/queue/depth") {
      $0.endpoint.caFile = folder.appendingPathComponent("cert.pem").path
    }
    #expect(try await trusted.read(now: Date()) == 42)
    let insecure = signal(url, pointer: "/data/queue/depth") { $0.endpoint.insecureSkipTLSVerify = true }
    #expect(try await insecure.read(now: Date()) == 42)
  }

  @Test("a server that never answers is a timeout, not a hang", .timeLimit(.minutes(10)))
  func timeout() async throws {
    // Listening but never accepting: the connection opens, no answer comes. The error saying
    // so is the proof that the read gave up; the time limit only guards against a hang.
    let (descriptor, port) = try loopbackSocket(listen: 8)
    defer { close(descriptor) }
    let url = "http://127.0.0.1:\(port)/"
    await #expect {
      try await signal(url, pointer: "") { $0.endpoint.timeout = 0.5 }.read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.contains("no answer in time") == true
    }
  }

  @Test("http_json settings are validated at their position")
  func settings() throws {
    let policy = try PolicyLoader.load(
      yaml: """
        signals:
          q:
            http_json:
              url: https://queue.internal/stats
              pointer: /depth
              headers: {Accept: application/json}
              bearer_token_env: QUEUE_TOKEN
              ca_file: ca.pem
              timeout: 2s
        processes:
          w: {scaling: {metric: q, target: 10, min: 1, max: 4}}
        """, file: "p.yaml"
    ).policy
    #expect(
      policy.signals.first?.source
        == .httpJSON(
          HTTPJSONSignalSettings(
            endpoint: HTTPEndpointSettings(
              url: "https://queue.internal/stats", bearerTokenEnv: "QUEUE_TOKEN", caFile: "ca.pem", timeout: 2
            ),
            pointer: "/depth", headers: ["Accept": "application/json"])))
    let process = "processes: {w: {scaling: {metric: q, target: 1, min: 1, max: 2}}}\n"
    #expect {
      try PolicyLoader.load(
        yaml: process + "signals:\n  q: {http_json: {url: queue.internal, pointer: /d}}\n", file: "p.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.description
        == "p.yaml:3:24: error: signal 'q' reads http_json but its url is 'queue.internal': give an http:// or https:// URL"
    }
    #expect {
      try PolicyLoader.load(
        yaml: process + "signals:\n  q: {http_json: {url: 'http://x', pointer: depth}}\n", file: "p.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.message
        == "pointer 'depth' must start with '/' (RFC 6901), such as /depth"
    }
  }
}

/// Runs a setup program (openssl) in a folder and returns its exit status.
enum CapstanRuntimeShim {
  static func run(_ argv: [String], in folder: URL) async throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = argv
    process.currentDirectoryURL = folder
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
  }
}
