import CCurl
import Foundation

/// One HTTP GET.
public struct HTTPRequest: Sendable {
  public var url: String
  public var headers: [String: String]
  public var timeout: TimeInterval
  /// A PEM bundle to verify the server against instead of the system's.
  public var caFile: String?
  /// Off only when the policy says so in as many words.
  public var verifyTLS: Bool

  public init(
    url: String, headers: [String: String] = [:], timeout: TimeInterval, caFile: String? = nil,
    verifyTLS: Bool = true
  ) {
    self.url = url
    self.headers = headers
    self.timeout = timeout
    self.caFile = caFile
    self.verifyTLS = verifyTLS
  }
}

public struct HTTPResponse: Sendable {
  public var status: Int
  public var body: Data
}

/// A transfer that did not complete, in curl's words and ours.
public struct HTTPTransferError: Error, CustomStringConvertible, Sendable {
  public var url: String
  public var message: String
  public var description: String { "GET \(url): \(message)" }
}

/// HTTP over libcurl, the client the design asks for. Each request is one easy handle on a
/// thread of its own, bounded by the request's timeout.
public enum CurlHTTPClient {
  /// Responses are signals and API objects; anything larger is refused.
  static let bodyLimit = 8 * 1024 * 1024

  private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

  public static func get(_ request: HTTPRequest) async throws -> HTTPResponse {
    _ = globalInit
    return try await withCheckedThrowingContinuation { continuation in
      DispatchQueue.global().async {
        continuation.resume(with: Result { try perform(request) })
      }
    }
  }

  final class Body {
    var data = Data()
    var overflowed = false
  }

  private static func perform(_ request: HTTPRequest) throws -> HTTPResponse {
    guard let handle = curl_easy_init() else {
      throw HTTPTransferError(url: request.url, message: "libcurl could not make a handle")
    }
    defer { curl_easy_cleanup(handle) }
    let body = Body()
    let bodyPointer = Unmanaged.passRetained(body)
    defer { bodyPointer.release() }
    var headerList: UnsafeMutablePointer<curl_slist>?
    for (name, value) in request.headers.sorted(by: { $0.key < $1.key }) {
      headerList = curl_slist_append(headerList, "\(name): \(value)")
    }
    defer { curl_slist_free_all(headerList) }
    var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

    let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errors in
      capstan_curl_set_string(handle, CURLOPT_URL, request.url)
      capstan_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(request.timeout * 1000))
      capstan_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
      capstan_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 1)
      capstan_curl_set_long(handle, CURLOPT_MAXREDIRS, 5)
      capstan_curl_set_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
      capstan_curl_set_long(handle, CURLOPT_SSL_VERIFYPEER, request.verifyTLS ? 1 : 0)
      capstan_curl_set_long(handle, CURLOPT_SSL_VERIFYHOST, request.verifyTLS ? 2 : 0)
      if let caFile = request.caFile { capstan_curl_set_string(handle, CURLOPT_CAINFO, caFile) }
      capstan_curl_set_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
      capstan_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errors.baseAddress))
      capstan_curl_set_pointer(handle, CURLOPT_WRITEDATA, bodyPointer.toOpaque())
      capstan_curl_set_write_function(handle) { data, size, count, context in
        let body = Unmanaged<Body>.fromOpaque(context!).takeUnretainedValue()
        let length = size * count
        guard body.data.count + length <= CurlHTTPClient.bodyLimit else {
          body.overflowed = true
          return 0
        }
        if let data {
          body.data.append(UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: length)
        }
        return length
      }
      return curl_easy_perform(handle)
    }
    guard code == CURLE_OK else {
      if body.overflowed {
        throw HTTPTransferError(
          url: request.url, message: "the response is larger than \(bodyLimit / 1_048_576) MiB")
      }
      let detail = String(
        decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
      throw HTTPTransferError(url: request.url, message: hint(for: code, message))
    }
    var status = 0
    capstan_curl_response_code(handle, &status)
    return HTTPResponse(status: status, body: body.data)
  }

  private static func hint(for code: CURLcode, _ message: String) -> String {
    switch code {
    case CURLE_OPERATION_TIMEDOUT: return "no answer in time (\(message))"
    case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE:
      return
        "the server's TLS certificate was not trusted (\(message)): give ca_file, or fix the server's certificate"
    case CURLE_COULDNT_CONNECT: return "nothing answered (\(message))"
    default: return message
    }
  }
}
