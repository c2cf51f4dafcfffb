import Foundation

// The `http_json` signal source: a json document over http. Its settings, its YAML form and its
// validation; the reader is in CapstanSignals. Registered in `SignalSourceKind.all`.

/// A number at a JSON pointer in the response to an HTTP GET.
public struct HTTPJSONSignalSettings: Sendable, Equatable, Codable {
  public var endpoint: HTTPEndpointSettings
  /// RFC 6901, such as `/data/queue/depth` or `/items/0/value`; `""` is the whole document.
  public var pointer: String
  public var headers: [String: String] = [:]

  public var url: String { endpoint.url }
}

struct RawHTTPJSONSource: Decodable, RawHTTPEndpoint {
  var url, pointer: RawScalar?
  var headers: RawMap<RawScalar>?
  var bearerTokenEnv, caFile, insecureSkipTLSVerify, timeout: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case url, pointer, headers, timeout
    case bearerTokenEnv = "bearer_token_env", caFile = "ca_file"
    case insecureSkipTLSVerify = "insecure_skip_tls_verify"
  }
}

extension PolicyValidator {
  func validateHTTPJSON(_ http: RawHTTPJSONSource, name: RawScalar) -> SignalSource? {
    guard
      let endpoint = httpEndpoint(
        http, signal: name, reads: "reads http_json", hint: "give an http:// or https:// URL")
    else { return nil }
    guard let pointer = http.pointer else {
      sink.error(
        name.location,
        "signal '\(name.text)' reads http_json but gives no pointer: add pointer: /path/to/number (RFC 6901)"
      )
      return nil
    }
    if !pointer.text.isEmpty && !pointer.text.hasPrefix("/") {
      sink.error(
        pointer.location,
        "pointer '\(pointer.text)' must start with '/' (RFC 6901), such as /\(pointer.text)")
      return nil
    }
    var headers: [String: String] = [:]
    for (key, value) in http.headers?.entries ?? [] { headers[key.text] = value.text }
    return .httpJSON(HTTPJSONSignalSettings(endpoint: endpoint, pointer: pointer.text, headers: headers))
  }
}
