import CapstanCore
import CapstanHTTP
import Foundation

/// An instant query against Prometheus's HTTP API (`/api/v1/query`). A scalar or a vector of
/// one sample is the value; more series than one is an error that names the query and the
/// count; no series follows `on_empty`. API errors carry Prometheus's own message.
public struct PrometheusSignal: SignalReader {
  public let name: String
  public let settings: PrometheusSignalSettings
  let baseDirectory: URL
  /// Where `bearer_token_env` is looked up.
  let environment: [String: String]

  public init(
    name: String, settings: PrometheusSignalSettings, baseDirectory: URL,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) {
    self.name = name
    self.settings = settings
    self.baseDirectory = baseDirectory
    self.environment = environment
  }

  public var timeout: TimeInterval { settings.endpoint.timeout }

  public func read(now: Date) async throws -> Double {
    let response = try await get(
      "query?query=\(Self.encode(settings.query))", timeout: settings.endpoint.timeout)
    let answer = try? JSONDecoder().decode(Response<QueryData>.self, from: response.body)
    guard let answer else {
      throw SignalReadError(
        signal: name, "\(settings.url) answered \(response.status), not a Prometheus API response")
    }
    guard answer.status == "success", let data = answer.data else {
      throw SignalReadError(
        signal: name,
        "Prometheus refused the query '\(settings.query)': \(answer.errorType.map { "\($0): " } ?? "")\(answer.error ?? "status \(answer.status)")"
      )
    }
    let text: String
    switch data.result {
    case .scalar(let sample):
      text = sample.value
    case .vector(let series):
      switch series.count {
      case 0:
        guard settings.onEmpty == .zero else {
          throw SignalReadError(
            signal: name, "the query '\(settings.query)' returned no series (on_empty: missing)")
        }
        return 0
      case 1:
        text = series[0].value.value
      default:
        throw SignalReadError(
          signal: name,
          "the query '\(settings.query)' returned \(series.count) series; it must return one: aggregate it, such as sum(...) or max(...)"
        )
      }
    case .other(let type):
      throw SignalReadError(
        signal: name,
        "the query '\(settings.query)' returned a \(type); it must return a scalar or one series")
    }
    guard let value = Double(text), value.isFinite else {
      throw SignalReadError(
        signal: name, "the query '\(settings.query)' returned \(text), not a finite number")
    }
    return value
  }

  /// One call to the HTTP API, with the source's token and CA, for instant and range queries alike.
  private func get(_ endpoint: String, timeout: TimeInterval) async throws -> HTTPResponse {
    let headers = try ["Accept": "application/json"].merging(
      bearerHeader(settings.endpoint.bearerTokenEnv, signal: name, environment: environment)
    ) { _, token in token }
    let base = settings.url.hasSuffix("/") ? String(settings.url.dropLast()) : settings.url
    do {
      return try await CurlHTTPClient.get(
        HTTPRequest(
          url: "\(base)/api/v1/\(endpoint)", headers: headers, timeout: timeout,
          ca: settings.endpoint.caFile.map { .file(baseDirectory.resolving($0).path) },
          verifyTLS: !settings.endpoint.insecureSkipTLSVerify))
    } catch {
      throw SignalReadError(signal: name, "\(error)")
    }
  }

  /// Prometheus refuses a range query of more than 11,000 points per series; chunks stay under.
  static let pointsPerChunk = 10_000

  /// The query's values over [from, to] every `step`, through `/api/v1/query_range`, in chunks
  /// the server accepts. Steps with no sample are absent from the result.
  public func range(from: Date, to: Date, step: TimeInterval) async throws -> [Date: Double] {
    var values: [Date: Double] = [:]
    var chunkStart = from
    while chunkStart <= to {
      let chunkEnd = min(to, chunkStart.addingTimeInterval(step * Double(Self.pointsPerChunk - 1)))
      // A backfill chunk is up to 10,000 points: it gets longer than a live read.
      let response = try await get(
        "query_range?query=\(Self.encode(settings.query))&start=\(chunkStart.timeIntervalSince1970)&end=\(chunkEnd.timeIntervalSince1970)&step=\(step)",
        timeout: max(settings.endpoint.timeout, 30))
      guard let answer = try? JSONDecoder().decode(Response<Matrix>.self, from: response.body) else {
        throw SignalReadError(
          signal: name, "\(settings.url) answered \(response.status), not a Prometheus API response")
      }
      guard answer.status == "success", let series = answer.data?.result else {
        throw SignalReadError(
          signal: name,
          "Prometheus refused the range query '\(settings.query)': \(answer.errorType.map { "\($0): " } ?? "")\(answer.error ?? "status \(answer.status)")"
        )
      }
      guard series.count <= 1 else {
        throw SignalReadError(
          signal: name,
          "the query '\(settings.query)' returned \(series.count) series; it must return one: aggregate it, such as sum(...) or max(...)"
        )
      }
      for point in series.first?.values ?? [] {
        if let value = Double(point.value), value.isFinite {
          values[Date(timeIntervalSince1970: point.time)] = value
        }
      }
      chunkStart = chunkEnd.addingTimeInterval(step)
    }
    return values
  }

  /// What `query_range` answers: a matrix of series, each with its samples.
  struct Matrix: Decodable {
    struct Series: Decodable {
      var values: [TimedSample]
    }
    var result: [Series]
  }

  struct TimedSample: Decodable {
    var time: Double
    var value: String

    init(from decoder: any Decoder) throws {
      var container = try decoder.unkeyedContainer()
      time = try container.decode(Double.self)
      value = try container.decode(String.self)
    }
  }

  /// Percent-encodes everything but unreserved characters: Prometheus reads '+' as a space.
  static func encode(_ query: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return query.addingPercentEncoding(withAllowedCharacters: allowed) ?? query
  }

  /// The API's envelope, the same for instant and range queries.
  struct Response<Payload: Decodable>: Decodable {
    var status: String
    var data: Payload?
    var errorType: String?
    var error: String?
  }

  /// `[<unix time>, "<value>"]`, as the API writes samples.
  struct Sample: Decodable {
    var value: String

    init(from decoder: any Decoder) throws {
      var container = try decoder.unkeyedContainer()
      _ = try container.decode(Double.self)
      value = try container.decode(String.self)
    }
  }

  struct Series: Decodable {
    var value: Sample
  }

  struct QueryData: Decodable {
    enum Result {
      case scalar(Sample)
      case vector([Series])
      case other(String)
    }

    var result: Result

    enum CodingKeys: String, CodingKey { case resultType, result }

    init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      let type = try container.decode(String.self, forKey: .resultType)
      switch type {
      case "scalar": result = .scalar(try container.decode(Sample.self, forKey: .result))
      case "vector": result = .vector(try container.decode([Series].self, forKey: .result))
      default: result = .other(type)
      }
    }
  }
}
