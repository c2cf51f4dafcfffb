import Foundation

// What the HTTP-based signal sources (`http_json`, `prometheus`) share: a URL, a bearer token
// from the environment, a CA file, TLS verification and a timeout, validated in one place.

/// Where an HTTP-based source connects, and how.
public struct HTTPEndpointSettings: Sendable, Equatable, Codable {
  public var url: String
  /// The name of an environment variable holding a bearer token, so no secret sits in the file.
  public var bearerTokenEnv: String? = nil
  /// A PEM file of the CA that signs the server's certificate, relative to the policy file.
  public var caFile: String? = nil
  /// TLS is verified unless this is set.
  public var insecureSkipTLSVerify: Bool = false
  public var timeout: TimeInterval = PolicyDefaults.signalTimeout

  public init(
    url: String, bearerTokenEnv: String? = nil, caFile: String? = nil, insecureSkipTLSVerify: Bool = false,
    timeout: TimeInterval = PolicyDefaults.signalTimeout
  ) {
    self.url = url
    self.bearerTokenEnv = bearerTokenEnv
    self.caFile = caFile
    self.insecureSkipTLSVerify = insecureSkipTLSVerify
    self.timeout = timeout
  }
}

/// The YAML keys of an HTTP endpoint, which an HTTP source's raw form holds among its own.
protocol RawHTTPEndpoint {
  var url: RawScalar? { get }
  var bearerTokenEnv: RawScalar? { get }
  var caFile: RawScalar? { get }
  var insecureSkipTLSVerify: RawScalar? { get }
  var timeout: RawScalar? { get }
}

extension PolicyValidator {
  /// - Parameters:
  ///   - reads: what the source does, for the message ("queries Prometheus").
  ///   - hint: what a URL for it looks like.
  func httpEndpoint(_ raw: some RawHTTPEndpoint, signal name: RawScalar, reads: String, hint: String)
    -> HTTPEndpointSettings?
  {
    guard let url = httpURL(raw.url, signal: name, reads: reads, hint: hint) else { return nil }
    var insecure = false
    if let flag = raw.insecureSkipTLSVerify {
      guard let value = Bool(flag.text) else {
        sink.error(flag.location, "insecure_skip_tls_verify is '\(flag.text)': use true or false")
        return nil
      }
      insecure = value
      if value {
        sink.warning(
          flag.location,
          "TLS verification is off for signal '\(name.text)': anyone on the path can forge its value")
      }
    }
    return HTTPEndpointSettings(
      url: url.text, bearerTokenEnv: raw.bearerTokenEnv?.text, caFile: raw.caFile?.text,
      insecureSkipTLSVerify: insecure,
      timeout: raw.timeout.flatMap { timeout($0) } ?? PolicyDefaults.signalTimeout)
  }
}
