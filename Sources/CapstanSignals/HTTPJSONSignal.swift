import CapstanCore
import CapstanHTTP
import Foundation

/// A number at a JSON pointer in the response to an HTTP GET, over libcurl.
public struct HTTPJSONSignal: SignalReader {
  public let name: String
  public let settings: HTTPJSONSignalSettings
  let baseDirectory: URL
  /// Where `bearer_token_env` is looked up.
  let environment: [String: String]

  public var timeout: TimeInterval { settings.endpoint.timeout }

  public func read(now: Date) async throws -> Double {
    let headers = settings.headers.merging(
      try bearerHeader(settings.endpoint.bearerTokenEnv, signal: name, environment: environment)
    ) {
      _, token in token
    }
    let caFile = settings.endpoint.caFile.map { baseDirectory.resolving($0).path }
    let response: HTTPResponse
    do {
      response = try await CurlHTTPClient.get(
        HTTPRequest(
          url: settings.url, headers: headers, timeout: settings.endpoint.timeout,
          ca: caFile.map(TLSMaterial.file),
          verifyTLS: !settings.endpoint.insecureSkipTLSVerify))
    } catch {
      throw SignalReadError(signal: name, "\(error)")
    }
    let url = redactingPassword(settings.url)
    guard (200..<300).contains(response.status) else {
      // A server may echo the request back: nothing sent as a header value is shown again.
      let said = redacting(
        String(decoding: response.body.prefix(200), as: UTF8.self),
        secrets: headers.values.flatMap { [$0, String($0.split(separator: " ").last ?? "")] }
      ).trimmingCharacters(in: .whitespacesAndNewlines)
      throw SignalReadError(
        signal: name, "GET \(url) answered \(response.status)\(said.isEmpty ? "" : ": \(said)")")
    }
    let document: JSONValue
    do {
      document = try JSONDecoder().decode(JSONValue.self, from: response.body)
    } catch {
      throw SignalReadError(signal: name, "GET \(url) did not answer JSON")
    }
    switch JSONPointer.resolve(settings.pointer, in: document) {
    case .success(.number(let number)):
      return number
    case .success(.string(let text)) where Double(text) != nil:
      return Double(text) ?? .nan
    case .success(let value):
      throw SignalReadError(
        signal: name,
        "\(settings.pointer) in the answer of \(url) is \(value.kindDescription), not a number")
    case .failure(let failure):
      throw SignalReadError(signal: name, "\(failure.message) in the answer of \(url)")
    }
  }
}

/// A JSON document that keeps booleans, numbers and text apart.
indirect enum JSONValue: Decodable, Equatable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else if let value = try? container.decode(Double.self) {
      self = .number(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode([JSONValue].self) {
      self = .array(value)
    } else {
      self = .object(try container.decode([String: JSONValue].self))
    }
  }

  var kindDescription: String {
    switch self {
    case .null: return "null"
    case .bool(let value): return "\(value)"
    case .number(let value): return "\(value)"
    case .string(let text): return "the text '\(text.prefix(40))'"
    case .array: return "a list"
    case .object: return "an object"
    }
  }
}

/// RFC 6901 JSON pointers.
enum JSONPointer {
  struct Failure: Error {
    var message: String
  }

  static func resolve(_ pointer: String, in document: JSONValue) -> Result<JSONValue, Failure> {
    guard !pointer.isEmpty else { return .success(document) }
    var current = document
    var path = ""
    for rawToken in pointer.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
      let token = rawToken.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
      path += "/" + rawToken
      switch current {
      case .object(let members):
        guard let next = members[token] else { return .failure(Failure(message: "\(path) is not there")) }
        current = next
      case .array(let items):
        guard let index = Int(token), index >= 0, index < items.count else {
          return .failure(Failure(message: "\(path) is not an index of a list of \(items.count)"))
        }
        current = items[index]
      default:
        return .failure(
          Failure(message: "\(path) goes inside \(current.kindDescription), which has no members"))
      }
    }
    return .success(current)
  }
}
