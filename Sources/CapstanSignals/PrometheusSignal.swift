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

  /// The instant query's answer, or why there is none.
  func query() async throws -> QueryData.Result {
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
    return data.result
  }

  public func read(now: Date) async throws -> Double {
    let text: String
    switch try await query() {
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
      // A series signal's history is its own series.
      let own =
        settings.series.map { value in series.filter { $0.metric?[settings.seriesLabel ?? ""] == value } }
        ?? series
      guard own.count <= 1 else {
        throw SignalReadError(
          signal: name,
          "the query '\(settings.query)' returned \(own.count) series; it must return one: aggregate it, such as sum(...) or max(...)"
        )
      }
      for point in own.first?.values ?? [] {
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
      var metric: [String: String]?
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
    var metric: [String: String]?
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

/// A query by a label (`series_label`) read once for every process that takes one of its
/// series: each signal gets the series whose label is its value. A process whose series is
/// absent follows `on_empty`; a label value on more than one series is an error for that
/// process alone; a failed query fails them all.
struct PrometheusSeriesSignals: SignalReader {
  let query: PrometheusSignal
  /// Each signal made from the declaration, and the label value it takes.
  let series: [(name: String, value: String)]

  var name: String { query.name }
  var timeout: TimeInterval { query.timeout }

  func read(now: Date) async throws -> Double {
    throw SignalReadError(signal: name, "a series signal is read with readSeries")
  }

  func readSeries(now: Date) async throws -> [String: Result<Double, any Error>] {
    let settings = query.settings
    let label = settings.seriesLabel ?? ""
    var byValue: [String: [String]] = [:]
    switch try await query.query() {
    case .vector(let all):
      for item in all { byValue[item.metric?[label] ?? "", default: []].append(item.value.value) }
    case .scalar:
      throw SignalReadError(
        signal: name,
        "the query '\(settings.query)' returned a scalar; with series_label it must return a series per process, such as sum by (\(label)) (...)"
      )
    case .other(let type):
      throw SignalReadError(
        signal: name,
        "the query '\(settings.query)' returned a \(type); with series_label it must return a vector")
    }
    var results: [String: Result<Double, any Error>] = [:]
    for (signal, value) in series {
      let found = byValue[value] ?? []
      switch found.count {
      case 0:
        results[signal] =
          settings.onEmpty == .zero
          ? .success(0)
          : .failure(
            SignalReadError(
              signal: signal,
              "the query '\(settings.query)' has no series with \(label)=\"\(value)\" (on_empty: missing)"))
      case 1:
        if let number = Double(found[0]), number.isFinite {
          results[signal] = .success(number)
        } else {
          results[signal] = .failure(
            SignalReadError(
              signal: signal, "the series with \(label)=\"\(value)\" holds \(found[0]), not a finite number"))
        }
      default:
        results[signal] = .failure(
          SignalReadError(
            signal: signal,
            "the query '\(settings.query)' has \(found.count) series with \(label)=\"\(value)\": aggregate by (\(label)) so that each value has one"
          ))
      }
    }
    return results
  }
}
