import CapstanTestKit
import Foundation
import Testing

@testable import CapstanCore
@testable import CapstanSignals

#if canImport(Glibc)
  import Glibc
#endif

func prometheusSignal(
  _ query: String, url: String, onEmpty: PrometheusSignalSettings.OnEmpty = .missing,
  timeout: TimeInterval = 3
) -> PrometheusSignal {
  PrometheusSignal(
    name: "p",
    settings: .init(
      endpoint: HTTPEndpointSettings(url: url, timeout: timeout), query: query, onEmpty: onEmpty),
    baseDirectory: URL(fileURLWithPath: "/"))
}

@Suite("prometheus signal")
struct PrometheusSignalTests {
  static let values: [(query: String, onEmpty: PrometheusSignalSettings.OnEmpty, value: Double)] = [
    ("scalar(count(up))", .missing, 1),
    (#"up{job="self"}"#, .missing, 1),
    ("1 + 1", .missing, 2),  // '+' must survive the URL: Prometheus reads a bare '+' as a space
    ("capstan_no_such_metric", .zero, 0),
  ]

  static let failures: [(query: String, message: String)] = [
    ("capstan_no_such_metric", "the query 'capstan_no_such_metric' returned no series (on_empty: missing)"),
    (
      "up or prometheus_build_info",
      "the query 'up or prometheus_build_info' returned 2 series; it must return one"
    ),
    ("sum(", "Prometheus refused the query 'sum(': bad_data: "),
    (#""hello""#, #"the query '"hello"' returned a string; it must return a scalar or one series"#),
    ("scalar(up) / 0", "the query 'scalar(up) / 0' returned +Inf, not a finite number"),
  ]

  /// One real Prometheus (it takes seconds to start) for the whole table of queries.
  @Test("queries against a real Prometheus: values, on_empty, and errors that name the query")
  func queries() async throws {
    let server = try PrometheusServer()
    #expect(await server.ready(), "prometheus did not become ready with a first scrape")
    for (query, onEmpty, value) in Self.values {
      #expect(
        try await prometheusSignal(query, url: server.url, onEmpty: onEmpty).read(now: Date()) == value,
        "\(query)")
    }
    for (query, message) in Self.failures {
      await #expect {
        try await prometheusSignal(query, url: server.url).read(now: Date())
      } throws: { error in
        (error as? SignalReadError)?.message.hasPrefix(message) == true
      }
    }
    server.stop()
    #expect(await eventually { !acceptsConnections(port: server.port) })
    await #expect {
      try await prometheusSignal("up", url: server.url).read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.contains("nothing answered") == true
    }
  }

  @Test(
    "HTTPS: refused without the CA; with ca_file (relative to the policy), live and range queries both work; insecure_skip_tls_verify reads without it"
  )
  func tls() async throws {
    let server = try PrometheusServer(tls: true)
    #expect(await server.ready())
    let untrusted = prometheusSignal("scalar(count(up))", url: server.url)
    await #expect {
      try await untrusted.read(now: Date())
    } throws: { error in
      "\(error)".contains("the server's TLS certificate was not trusted")
    }
    let trusted = PrometheusSignal(
      name: "p",
      settings: .init(
        endpoint: HTTPEndpointSettings(url: server.url, caFile: "cert.pem"), query: "scalar(count(up))"),
      baseDirectory: server.folder)
    #expect(try await trusted.read(now: Date()) == 1)
    let now = Date()
    let values = try await trusted.range(from: now.addingTimeInterval(-2), to: now, step: 1)
    #expect(!values.isEmpty)
    #expect(values.values.allSatisfy { $0 == 1 })
    let insecure = PrometheusSignal(
      name: "p",
      settings: .init(
        endpoint: HTTPEndpointSettings(url: server.url, insecureSkipTLSVerify: true),
        query: "scalar(count(up))"),
      baseDirectory: server.folder)
    #expect(try await insecure.read(now: Date()) == 1)
  }

  @Test("a silent server is a timeout, not a hang")
  func silent() async throws {
    let (descriptor, port) = try loopbackSocket(listen: 8)
    defer { close(descriptor) }
    await #expect {
      try await prometheusSignal("up", url: "http://127.0.0.1:\(port)", timeout: 0.5).read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.contains("no answer in time") == true
    }
  }

  @Test("prometheus settings are validated at their position")
  func settings() throws {
    let base = "processes: {w: {scaling: {metric: q, target: 1, min: 1, max: 2}}}\nsignals:\n"
    let policy = try PolicyLoader.load(
      yaml: base
        + "  q: {prometheus: {url: 'http://prom:9090', query: 'sum(rate(x[1m]))', on_empty: zero, timeout: 2s}}\n",
      file: "p.yaml"
    ).policy
    #expect(
      policy.signals.first?.source
        == .prometheus(
          .init(
            endpoint: HTTPEndpointSettings(url: "http://prom:9090", timeout: 2), query: "sum(rate(x[1m]))",
            onEmpty: .zero)))
    #expect {
      try PolicyLoader.load(
        yaml: base + "  q: {prometheus: {url: 'http://p', query: up, on_empty: skip}}\n", file: "p.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.description
        == "p.yaml:3:58: error: on_empty is 'skip': use missing or zero"
    }
    #expect {
      try PolicyLoader.load(yaml: base + "  q: {prometheus: {url: prom:9090, query: up}}\n", file: "p.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.message.contains("give the server's base URL") == true
    }
  }
}
