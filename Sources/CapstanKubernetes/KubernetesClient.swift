import CapstanCore
import CapstanHTTP
import Foundation
import Logging
import Metrics

/// An answer from the API server other than success, in its own words: the Status `reason` and
/// `message` it sent, or the plain text of a 429.
public struct KubernetesAPIError: Error, CustomStringConvertible, Sendable {
  public var method: String
  public var path: String
  /// The HTTP status; 0 when nothing was sent (Capstan was still waiting out a Retry-After).
  public var status: Int
  public var reason: String
  public var message: String

  public var isConflict: Bool { status == 409 }
  public var isNotFound: Bool { status == 404 }

  public var description: String {
    let shown = reason.isEmpty ? "" : "\(reason): "
    return "\(method) \(path): \(status == 0 ? "" : "\(status) ")\(shown)\(message)\(hint)"
  }

  private var hint: String {
    switch status {
    case 401:
      return
        " (the token or certificate was refused: check the kubeconfig user, or the service account's token)"
    case 403: return " (give the service account this permission: see manifests/base/role.yaml)"
    case 404 where path.hasSuffix("/scale"):
      return " (check kubernetes.kind, name and namespace of the process)"
    default: return ""
    }
  }
}

/// REST calls to the Kubernetes API over libcurl. It keeps the bearer token fresh (re-read from
/// its file every minute and at once after a 401), honours `Retry-After` on 429 and 5xx and backs
/// off, and never sends a request before a server-requested wait is over.
public actor KubernetesClient {
  public let connection: KubernetesConnection
  /// Per request; a slower answer is a failure, so one slow call cannot stall the loop.
  public let timeout: TimeInterval
  private let logger: Logger
  private var token: String?
  private var tokenReadAt: Date?
  /// Nothing is sent before this: the API server asked Capstan to wait, or it is failing.
  private var notBefore = Date.distantPast
  /// Consecutive 429 and 5xx answers, for the backoff when no Retry-After is given.
  private var strain = 0
  /// Capstan's own bound on its request rate, client-go's QPS and burst; nil: none.
  private var rateLimiter: RequestRateLimiter?
  private let waitedCounter: FloatingPointCounter?
  /// Waits on the rate limit since the last warning, and when that was.
  private var waitsUnreported = (count: 0, seconds: 0.0)
  private var lastWaitWarning: Date?
  /// The time the rate limit reads: the wall clock, or a test's manual clock.
  private let now: @Sendable () -> Date

  static let tokenRefresh: TimeInterval = 60
  /// The longest backoff of Capstan's own choosing.
  static let longestWait: TimeInterval = 30
  /// The longest server-requested pause honoured; a larger Retry-After is taken as this.
  static let longestPause: TimeInterval = 300

  /// A waiting request warns at most this often, with what it and the others waited since.
  static let waitWarningInterval: TimeInterval = 60

  /// - Parameters:
  ///   - rateLimit: the most requests a second, and at once, this client sends.
  ///   - metrics: where the time requests wait on the rate limit counts, as
  ///     `capstan_kubernetes_rate_limit_wait_seconds_total`.
  ///   - now: the clock the rate limit reads.
  public init(
    connection: KubernetesConnection, timeout: TimeInterval = 10, logger: Logger,
    rateLimit: RequestRateLimiter? = nil, metrics: (any MetricsFactory)? = nil,
    now: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.now = now
    self.connection = connection
    self.timeout = timeout
    self.logger = logger
    self.rateLimiter = rateLimit
    self.waitedCounter = metrics.map {
      FloatingPointCounter(label: "capstan_kubernetes_rate_limit_wait_seconds_total", factory: $0)
    }
  }

  /// Waits for this request's slot under the rate limit.
  private func takeSlot() async throws {
    guard var limiter = rateLimiter else { return }
    let now = self.now()
    let wait = limiter.reserve(at: now)
    rateLimiter = limiter
    guard wait > 0 else { return }
    waitedCounter?.increment(by: wait)
    waitsUnreported.count += 1
    waitsUnreported.seconds += wait
    if lastWaitWarning.map({ now.timeIntervalSince($0) >= Self.waitWarningInterval }) ?? true {
      logger.warning(
        "requests to the API server wait on Capstan's rate limit: raise kubernetes.qps and burst, or expect late ticks",
        metadata: [
          "qps": "\(limiter.qps)", "burst": "\(limiter.burst)", "waits": "\(waitsUnreported.count)",
          "waited_seconds": "\(Ceilings.format(waitsUnreported.seconds))",
        ])
      lastWaitWarning = now
      waitsUnreported = (0, 0)
    }
    try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
  }

  /// One call; returns the body of a 2xx answer.
  /// - Parameters:
  ///   - attempts: tries in all, for 429, 5xx and a refused connection.
  ///   - patience: the longest this call waits, in all, for the server's Retry-After; a longer
  ///     wait fails the call at once without sending anything, and the wait still holds after.
  public func send(
    _ method: String, _ path: String, body: Data? = nil, attempts: Int = 3, patience: TimeInterval = 10,
    timeout: TimeInterval? = nil
  ) async throws -> Data {
    var attempt = 0
    var reReadAfter401 = false
    var waited: TimeInterval = 0
    while true {
      attempt += 1
      let wait = notBefore.timeIntervalSinceNow
      if wait > 0 {
        guard waited + wait <= patience else {
          throw KubernetesAPIError(
            method: method, path: path, status: 0, reason: "TooManyRequests",
            message:
              "not sent: the API server asked for a pause, which has \(Int(wait.rounded(.up)))s to go; Capstan tries again after it"
          )
        }
        waited += wait
        try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
      }
      try await takeSlot()
      let response: HTTPResponse
      do {
        response = try await CurlHTTPClient.send(try request(method, path, body: body, timeout: timeout))
      } catch let failure as HTTPTransferError {
        // A timeout is not retried: the call has already used its time.
        guard !failure.timedOut, attempt < attempts else { throw failure }
        pause(Self.backoff(strain: strain + 1))
        strain += 1
        continue
      }
      if (200..<300).contains(response.status) {
        strain = 0
        return response.body
      }
      let error = Self.apiError(method: method, path: path, response: response)
      switch response.status {
      case 401 where !reReadAfter401:
        if case .file = connection.token {
          // A bound token rotated under us: read the file again and retry once.
          reReadAfter401 = true
          tokenReadAt = nil
          attempt -= 1
          logger.notice("the API server refused the token; reading it again", metadata: ["path": "\(path)"])
          continue
        }
        throw error
      case 429, 500, 502, 503, 504:
        strain += 1
        let retryAfter = response.headers["retry-after"].flatMap {
          TimeInterval($0.trimmingCharacters(in: .whitespaces))
        }
        let delay = min(retryAfter ?? Self.backoff(strain: strain), Self.longestPause)
        pause(delay)
        logger.warning(
          "the API server is overloaded or failing; backing off",
          metadata: [
            "status": "\(response.status)", "path": "\(path)", "wait_seconds": "\(delay)",
            "retry_after": "\(retryAfter.map { "\($0)" } ?? "none")",
          ])
        guard attempt < attempts, waited + delay <= patience else { throw error }
      default:
        throw error
      }
    }
  }

  /// A request for a response read as a stream (a watch), with this client's credentials and
  /// TLS, once its slot under the rate limit has come.
  public func streamingRequest(_ path: String, timeout: TimeInterval) async throws -> HTTPRequest {
    let wait = notBefore.timeIntervalSinceNow
    if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
    try await takeSlot()
    return try request("GET", path, body: nil, timeout: timeout)
  }

  /// A streamed request's refusal: a 429 or 5xx pauses this client as `send` pauses it, for the
  /// Retry-After the server gave or the backoff.
  public func refused(_ response: HTTPResponse) {
    guard [429, 500, 502, 503, 504].contains(response.status) else { return }
    strain += 1
    let retryAfter = response.headers["retry-after"].flatMap {
      TimeInterval($0.trimmingCharacters(in: .whitespaces))
    }
    pause(min(retryAfter ?? Self.backoff(strain: strain), Self.longestPause))
  }

  /// The server refused the token on a streamed request: the file is read again next time.
  public func tokenRefused() { tokenReadAt = nil }

  /// 0.5 s, 1 s, 2 s ... up to 30 s.
  static func backoff(strain: Int) -> TimeInterval {
    min(0.5 * pow(2, Double(max(0, strain - 1))), longestWait)
  }

  private func pause(_ seconds: TimeInterval) {
    notBefore = max(notBefore, Date().addingTimeInterval(seconds))
  }

  private func request(_ method: String, _ path: String, body: Data?, timeout: TimeInterval?) throws
    -> HTTPRequest
  {
    var headers = ["Accept": "application/json", "User-Agent": "capstan"]
    // PATCH is a JSON merge patch (RFC 7386): only the keys sent change.
    if body != nil {
      headers["Content-Type"] = method == "PATCH" ? "application/merge-patch+json" : "application/json"
    }
    if let token = try currentToken() { headers["Authorization"] = "Bearer \(token)" }
    return HTTPRequest(
      method: method, url: connection.server + path, headers: headers, body: body,
      timeout: timeout ?? self.timeout, ca: connection.ca, verifyTLS: !connection.insecureSkipTLSVerify,
      clientCertificate: connection.clientCertificate, clientKey: connection.clientKey)
  }

  private func currentToken() throws -> String? {
    switch connection.token {
    case nil: return nil
    case .literal(let token): return token
    case .file(let path):
      if let token, let read = tokenReadAt, Date().timeIntervalSince(read) < Self.tokenRefresh {
        return token
      }
      do {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        tokenReadAt = Date()
        return token
      } catch {
        // Keep the last token, if any, rather than sending none.
        if let token { return token }
        throw KubernetesAPIError(
          method: "", path: path, status: 0, reason: "TokenUnreadable",
          message: "cannot read the token file \(path): \(error.localizedDescription)")
      }
    }
  }

  static func apiError(method: String, path: String, response: HTTPResponse) -> KubernetesAPIError {
    struct Status: Decodable {
      var kind: String?
      var reason: String?
      var message: String?
    }
    if let status = try? JSONDecoder().decode(Status.self, from: response.body), status.kind == "Status" {
      return KubernetesAPIError(
        method: method, path: path, status: response.status, reason: status.reason ?? "",
        message: status.message ?? "")
    }
    let text = String(decoding: response.body.prefix(500), as: UTF8.self)
      .trimmingCharacters(in: .whitespacesAndNewlines)
    return KubernetesAPIError(
      method: method, path: path, status: response.status,
      reason: response.status == 429 ? "TooManyRequests" : "",
      message: text.isEmpty ? "HTTP \(response.status)" : text)
  }
}
