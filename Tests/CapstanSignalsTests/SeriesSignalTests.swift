import CapstanTestKit
import Foundation
import Testing

@testable import CapstanCore
@testable import CapstanSignals

/// `series_label`: one Prometheus query whose series feed a process each.
@Suite("prometheus series_label")
struct SeriesSignalTests {
  static func policy(url: String = "http://127.0.0.1:1", query: String, extra: String = "") throws -> Policy {
    try PolicyLoader.load(
      yaml: """
        signals:
          depth:
            prometheus: {url: "\(url)", query: '\(query)', series_label: deployment\(extra)}
        processes:
          worker-a:
            class: batch
            scaling: {metric: depth, target: 5, min: 0, max: 10}
            local: {command: [sleep, "60"]}
          worker-b:
            class: batch
            scaling: {metric: depth, target: 5, min: 0, max: 10}
            local: {command: [sleep, "60"]}
          worker-c:
            class: batch
            scaling: {metric: depth, target: 5, min: 0, max: 10}
            local: {command: [sleep, "60"]}
        autoscaling:
          worker-c:
            scale_up:
              conditions: [{metric: depth > 100}]
              action: {add_instances: 2}
        """, file: "p.yaml"
    ).policy
  }

  @Test("the loader makes a signal per process that reads it, and points the process's references at it")
  func expansion() throws {
    let policy = try Self.policy(query: "sum by (deployment) (queue_depth)")
    #expect(policy.signals.map(\.name) == ["depth[worker-a]", "depth[worker-b]", "depth[worker-c]"])
    let series = policy.signals.compactMap { spec -> String? in
      guard case .prometheus(let settings)? = spec.source else { return nil }
      return settings.series
    }
    #expect(series == ["worker-a", "worker-b", "worker-c"])
    #expect(policy.target(named: "worker-b")?.metric == "depth[worker-b]")
    let c = try #require(policy.target(named: "worker-c"))
    #expect(c.up.rule?.conditions.map(\.metric) == ["depth[worker-c]"])
    #expect(c.signalNames == ["depth[worker-c]"])
    // The engine sees three ordinary signals; the live controller, one query.
    let readers = SignalReaders.make(policy.signals, baseDirectory: URL(fileURLWithPath: "/"))
    #expect(readers.count == 1)
  }

  @Test("a Kubernetes process takes the series of its workload's name")
  func workloadName() throws {
    let policy = try PolicyLoader.load(
      yaml: """
        backend: kubernetes
        signals:
          depth:
            prometheus: {url: "http://127.0.0.1:1", query: 'sum by (deployment) (q)', series_label: deployment}
        processes:
          embed:
            kubernetes: {name: embedding-worker}
            scaling: {metric: depth, target: 5, min: 1, max: 10}
        """, file: "p.yaml"
    ).policy
    guard case .prometheus(let settings)? = policy.signals.first?.source else {
      Issue.record("no prometheus signal")
      return
    }
    #expect(policy.signals.map(\.name) == ["depth[embed]"])
    #expect(settings.series == "embedding-worker")
  }

  @Test("series_label must be a label name, and only a prometheus source takes it")
  func refused() {
    #expect(throws: PolicyLoadError.self) { try Self.policy(query: "q", extra: ", series_label: 9lives") }
    do {
      _ = try PolicyLoader.load(
        yaml: """
          signals:
            depth: {directory: {path: ., glob: "*.job", series_label: deployment}}
          processes:
            w: {class: batch, scaling: {metric: depth, target: 5, min: 0, max: 2}, local: {command: [x]}}
          """, file: "q.yaml")
      Issue.record("series_label beside a directory source was accepted")
    } catch {
      #expect("\(error)".contains("q.yaml:2:") && "\(error)".contains("series_label"), "\(error)")
    }
  }

  @Test(
    "against a real Prometheus: one query a tick, each process its series, an absent one by on_empty, a duplicate an error"
  )
  func readsRealPrometheus() async throws {
    let server = try PrometheusServer()
    #expect(await server.ready(), "prometheus did not become ready with a first scrape")
    // Three series: worker-a 3, worker-b 7, and worker-b again under another job label, so
    // that worker-b's value is ambiguous; worker-c has none.
    let query =
      #"label_replace(vector(3), "deployment", "worker-a", "", "") or label_replace(vector(7), "deployment", "worker-b", "", "")"#
    let policy = try Self.policy(url: server.url, query: query)
    let readers = SignalReaders.make(policy.signals, baseDirectory: URL(fileURLWithPath: "/"))
    #expect(readers.count == 1)
    let results = await SignalReaders.readAll(readers, now: Date())
    #expect(try results["depth[worker-a]"]?.get() == 3)
    #expect(try results["depth[worker-b]"]?.get() == 7)
    let missing = results["depth[worker-c]"].map { result -> String in
      if case .failure(let error) = result { return "\(error)" }
      return "a value"
    }
    #expect(
      missing?.contains(#"no series with deployment="worker-c" (on_empty: missing)"#) == true,
      "\(missing ?? "")")

    let zero = try Self.policy(url: server.url, query: query, extra: ", on_empty: zero")
    let zeroResults = await SignalReaders.readAll(
      SignalReaders.make(zero.signals, baseDirectory: URL(fileURLWithPath: "/")), now: Date())
    #expect(try zeroResults["depth[worker-c]"]?.get() == 0)

    let doubled =
      query
      + #" or label_replace(label_replace(vector(1), "deployment", "worker-b", "", ""), "job", "x", "", "")"#
    let twice = await SignalReaders.readAll(
      SignalReaders.make(
        try Self.policy(url: server.url, query: doubled).signals, baseDirectory: URL(fileURLWithPath: "/")),
      now: Date())
    let ambiguous = twice["depth[worker-b]"].map { result -> String in
      if case .failure(let error) = result { return "\(error)" }
      return "a value"
    }
    #expect(ambiguous?.contains("has 2 series with deployment=\"worker-b\"") == true, "\(ambiguous ?? "")")
    #expect(try twice["depth[worker-a]"]?.get() == 3)

    // A query Prometheus refuses fails every process's signal, each under its own name.
    let broken = await SignalReaders.readAll(
      SignalReaders.make(
        try Self.policy(url: server.url, query: "sum(").signals, baseDirectory: URL(fileURLWithPath: "/")),
      now: Date())
    for name in ["depth[worker-a]", "depth[worker-b]", "depth[worker-c]"] {
      guard case .failure(let error)? = broken[name] else {
        Issue.record("\(name) has a value from a refused query")
        continue
      }
      #expect("\(error)".hasPrefix("signal \(name): Prometheus refused the query"), "\(error)")
    }
    server.stop()
  }
}
