import Foundation

// The `prometheus` signal source: a promql instant query. Its settings, its YAML form and its
// validation; the reader is in CapstanSignals. Registered in `SignalSourceKind.all`.

/// An instant query against Prometheus's HTTP API (or anything that speaks it: Thanos, Mimir,
/// VictoriaMetrics).
public struct PrometheusSignalSettings: Sendable, Equatable, Codable {
  public enum OnEmpty: String, Sendable, Codable, CaseIterable {
    /// No series: the signal is missing at that tick (the safe default: no scale-down on it).
    case missing
    /// No series: the value is 0, for queries where no series means nothing to do.
    case zero
  }

  /// The server's base URL, such as http://prometheus:9090, and how to reach it.
  public var endpoint: HTTPEndpointSettings
  /// PromQL that yields a scalar or exactly one series; with `seriesLabel`, a vector with a
  /// series per process.
  public var query: String
  public var onEmpty: OnEmpty = .missing
  /// `series_label`: the query returns a series per process (`sum by (deployment) (...)`), and
  /// each process that reads the signal takes the one whose label has its name (its Kubernetes
  /// workload's name where it has one). One query a tick serves them all.
  public var seriesLabel: String?
  /// The label value this signal takes, for the signals the policy loader makes from one with
  /// `seriesLabel`, one per process; nil in the file.
  public var series: String?

  public var url: String { endpoint.url }

  /// The settings with `series` cleared: alike for every signal made from one declaration, so
  /// that they share one query.
  public var sharedQuery: PrometheusSignalSettings {
    var shared = self
    shared.series = nil
    return shared
  }
}

struct RawPrometheusSource: Decodable, RawHTTPEndpoint {
  var url, query, onEmpty, seriesLabel, bearerTokenEnv, caFile, insecureSkipTLSVerify, timeout: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case url, query, timeout
    case onEmpty = "on_empty", seriesLabel = "series_label", bearerTokenEnv = "bearer_token_env"
    case caFile = "ca_file", insecureSkipTLSVerify = "insecure_skip_tls_verify"
  }
}

extension PolicyValidator {
  func validatePrometheus(_ prometheus: RawPrometheusSource, name: RawScalar) -> SignalSource? {
    guard
      let endpoint = httpEndpoint(
        prometheus, signal: name, reads: "queries Prometheus",
        hint: "give the server's base URL, such as http://prometheus:9090")
    else { return nil }
    guard let query = prometheus.query, !query.text.trimmingCharacters(in: .whitespaces).isEmpty else {
      sink.error(
        name.location, "signal '\(name.text)' queries Prometheus but gives no query: add query: PROMQL")
      return nil
    }
    guard
      let onEmpty = choice(
        prometheus.onEmpty, "on_empty", default: PrometheusSignalSettings.OnEmpty.missing)
    else { return nil }
    var settings = PrometheusSignalSettings(endpoint: endpoint, query: query.text, onEmpty: onEmpty)
    if let label = prometheus.seriesLabel {
      // Prometheus's own rule for a label name.
      guard label.text.wholeMatch(of: /[a-zA-Z_][a-zA-Z0-9_]*/) != nil, !label.text.hasPrefix("__") else {
        sink.error(
          label.location,
          "series_label is '\(label.text)': write the label the query groups by, such as deployment for sum by (deployment) (...)"
        )
        return nil
      }
      settings.seriesLabel = label.text
    }
    return .prometheus(settings)
  }
}
