import CCurl
import Foundation

/// A certificate, key or CA bundle: a PEM file, or PEM bytes (a kubeconfig's `*-data` fields).
public enum TLSMaterial: Sendable, Equatable {
  case file(String)
  case pem(Data)
}

/// One HTTP request.
public struct HTTPRequest: Sendable {
  public var method: String
  public var url: String
  public var headers: [String: String]
  public var body: Data?
  public var timeout: TimeInterval
  /// A PEM bundle to verify the server against instead of the system's.
  public var ca: TLSMaterial?
  /// Off only when the configuration says so in as many words.
  public var verifyTLS: Bool
  /// A client certificate and its key, for servers that authenticate clients by TLS.
  public var clientCertificate: TLSMaterial?
  public var clientKey: TLSMaterial?

  public init(
    method: String = "GET", url: String, headers: [String: String] = [:], body: Data? = nil,
    timeout: TimeInterval, ca: TLSMaterial? = nil, verifyTLS: Bool = true,
    clientCertificate: TLSMaterial? = nil, clientKey: TLSMaterial? = nil
  ) {
    self.method = method
    self.url = url
    self.headers = headers
    self.body = body
    self.timeout = timeout
    self.ca = ca
    self.verifyTLS = verifyTLS
    self.clientCertificate = clientCertificate
    self.clientKey = clientKey
  }
}

public struct HTTPResponse: Sendable {
  public var status: Int
  /// Header names in lower case; of a repeated header, the last.
  public var headers: [String: String]
  public var body: Data
}

/// A transfer that did not complete, in curl's words and ours.
public struct HTTPTransferError: Error, CustomStringConvertible, Sendable {
  public var method: String
  public var url: String
  public var message: String
  public var timedOut: Bool
  public var description: String { "\(method) \(redactingPassword(url)): \(message)" }
}

/// A URL as it may be shown: a password in it (`http://user:pass@host/`) becomes `***`.
public func redactingPassword(_ url: String) -> String {
  guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else {
    return url
  }
  let authority = url[scheme.upperBound..<at]
  guard !authority.contains("/"), let colon = authority.firstIndex(of: ":") else { return url }
  return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
}

/// Text to show, with every secret in it (a token a server echoes back) replaced by `***`.
public func redacting(_ text: String, secrets: some Sequence<String>) -> String {
  secrets.filter { $0.count >= 4 }.reduce(text) { $0.replacingOccurrences(of: $1, with: "***") }
}

/// HTTP over libcurl, the client the design asks for. Each request is one easy handle on a
/// thread of its own, bounded by the request's timeout.
public enum CurlHTTPClient {
  /// Responses are signals and API objects; anything larger is refused.
  static let bodyLimit = 8 * 1024 * 1024

  private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

  public static func send(_ request: HTTPRequest) async throws -> HTTPResponse {
    _ = globalInit
    return try await withCheckedThrowingContinuation { continuation in
      DispatchQueue.global().async {
        continuation.resume(with: Result { try perform(request) })
      }
    }
  }

  public static func get(_ request: HTTPRequest) async throws -> HTTPResponse {
    var request = request
    request.method = "GET"
    return try await send(request)
  }

  /// A response read line by line as it arrives (a Kubernetes watch), on the calling thread,
  /// until the server ends it, `line` returns false, or `stop` returns true (asked about once a
  /// second, and at every line). `status` hears each status line's code as it arrives, before
  /// any of the body. A 2xx body goes to `line` and is not kept; any other status's body is kept
  /// and returned, for its error. Blocking: call it from a thread of its own.
  public static func stream(
    _ request: HTTPRequest, stop: @escaping @Sendable () -> Bool, status: @escaping (Int) -> Void = { _ in },
    line: @escaping (Data) -> Bool
  ) throws -> HTTPResponse {
    _ = globalInit
    let lines = LineStream(stop: stop, line: line)
    lines.onStatus = status
    do {
      return try perform(request, lines: lines)
    } catch is HTTPTransferError where lines.ended {
      // Stopped on purpose: what was read is all there is.
      return HTTPResponse(status: lines.status, headers: [:], body: Data())
    }
  }

  /// A streamed body: the bytes since the last newline, and where whole lines go.
  final class LineStream {
    let stop: @Sendable () -> Bool
    let line: (Data) -> Bool
    var onStatus: (Int) -> Void = { _ in }
    var pending = Data()
    var status = 0
    /// Stopped by `stop` or `line`, not by a failure.
    var ended = false

    init(stop: @escaping @Sendable () -> Bool, line: @escaping (Data) -> Bool) {
      self.stop = stop
      self.line = line
    }

    /// Hands each whole line on; false to end the transfer.
    func take(_ bytes: UnsafeRawBufferPointer) -> Bool {
      pending.append(contentsOf: bytes)
      while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
        let whole = pending[pending.startIndex..<newline]
        pending.removeSubrange(pending.startIndex...newline)
        if stop() || (!whole.isEmpty && !line(Data(whole))) {
          ended = true
          return false
        }
      }
      return true
    }
  }

  final class Transfer {
    var data = Data()
    var headers: [String: String] = [:]
    var overflowed = false
    var status = 0
    /// Set for a streamed transfer: a 2xx body goes here, line by line.
    var lines: LineStream?
  }

  private static func perform(_ request: HTTPRequest, lines: LineStream? = nil) throws -> HTTPResponse {
    guard let handle = curl_easy_init() else {
      throw HTTPTransferError(
        method: request.method, url: request.url, message: "libcurl could not make a handle", timedOut: false)
    }
    defer { curl_easy_cleanup(handle) }
    let transfer = Transfer()
    transfer.lines = lines
    let transferPointer = Unmanaged.passRetained(transfer)
    defer { transferPointer.release() }
    var headerList: UnsafeMutablePointer<curl_slist>?
    for (name, value) in request.headers.sorted(by: { $0.key < $1.key }) {
      headerList = curl_slist_append(headerList, "\(name): \(value)")
    }
    // curl sends "Expect: 100-continue" before larger bodies; API servers need no such round trip.
    if request.body != nil { headerList = curl_slist_append(headerList, "Expect:") }
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
      if request.method != "GET" { capstan_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, request.method) }
      if let body = request.body {
        capstan_curl_set_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
        // Copied by curl, so the buffer need not outlive this call. An empty body still needs
        // an address, which a one-byte buffer gives.
        (body.isEmpty ? Data([0]) : body).withUnsafeBytes { bytes in
          _ = capstan_curl_set_pointer(
            handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress))
        }
      }
      setTLSMaterial(handle, request.ca, file: CURLOPT_CAINFO, blob: CURLOPT_CAINFO_BLOB)
      setTLSMaterial(handle, request.clientCertificate, file: CURLOPT_SSLCERT, blob: CURLOPT_SSLCERT_BLOB)
      setTLSMaterial(handle, request.clientKey, file: CURLOPT_SSLKEY, blob: CURLOPT_SSLKEY_BLOB)
      capstan_curl_set_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
      capstan_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errors.baseAddress))
      capstan_curl_set_pointer(handle, CURLOPT_WRITEDATA, transferPointer.toOpaque())
      capstan_curl_set_pointer(handle, CURLOPT_HEADERDATA, transferPointer.toOpaque())
      capstan_curl_set_write_function(handle) { data, size, count, context in
        let length = size * count
        // The context is the transfer this handle was given (CURLOPT_WRITEDATA), never nil.
        guard let context else { return 0 }
        let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
        if let lines = transfer.lines, (200..<300).contains(transfer.status) {
          // One line (one watch event) may not exceed the body limit either.
          guard lines.pending.count + length <= CurlHTTPClient.bodyLimit else {
            transfer.overflowed = true
            return 0
          }
          guard let data else { return length }
          return lines.take(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
        }
        guard transfer.data.count + length <= CurlHTTPClient.bodyLimit else {
          transfer.overflowed = true
          return 0
        }
        if let data {
          transfer.data.append(UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: length)
        }
        return length
      }
      capstan_curl_set_header_function(handle) { data, size, count, context in
        let length = size * count
        guard let data, let context else { return length }
        let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
        let line = String(
          decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
        // A new status line starts the headers of the next response (after a redirect).
        if line.hasPrefix("HTTP/") {
          transfer.headers = [:]
          let parts = line.split(separator: " ", maxSplits: 2)
          transfer.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
          transfer.lines?.status = transfer.status
          transfer.lines?.onStatus(transfer.status)
        }
        if let colon = line.firstIndex(of: ":") {
          let name = line[..<colon].lowercased()
          transfer.headers[name] = line[line.index(after: colon)...].trimmingCharacters(
            in: .whitespacesAndNewlines)
        }
        return length
      }
      if lines != nil {
        // Asked about once a second however quiet the stream, so a stop is never held up by a
        // server that sends nothing.
        capstan_curl_set_long(handle, CURLOPT_NOPROGRESS, 0)
        capstan_curl_set_pointer(handle, CURLOPT_XFERINFODATA, transferPointer.toOpaque())
        capstan_curl_set_xferinfo_function(handle) { context, _, _, _, _ in
          guard let context else { return 0 }
          let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
          guard let lines = transfer.lines, lines.stop() else { return 0 }
          lines.ended = true
          return 1
        }
      }
      return curl_easy_perform(handle)
    }
    guard code == CURLE_OK else {
      if transfer.overflowed {
        throw HTTPTransferError(
          method: request.method, url: request.url,
          message: "the response is larger than \(bodyLimit / 1_048_576) MiB", timedOut: false)
      }
      let detail = String(
        decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
      throw HTTPTransferError(
        method: request.method, url: request.url, message: hint(for: code, message),
        timedOut: code == CURLE_OPERATION_TIMEDOUT)
    }
    var status = 0
    capstan_curl_response_code(handle, &status)
    return HTTPResponse(status: status, headers: transfer.headers, body: transfer.data)
  }

  private static func setTLSMaterial(
    _ handle: UnsafeMutableRawPointer, _ material: TLSMaterial?, file: CURLoption, blob: CURLoption
  ) {
    switch material {
    case .file(let path)?: capstan_curl_set_string(handle, file, path)
    case .pem(let data)?:
      data.withUnsafeBytes { bytes in
        // CURL_BLOB_COPY: curl keeps its own copy.
        var value = curl_blob(
          data: UnsafeMutableRawPointer(mutating: bytes.baseAddress), len: bytes.count,
          flags: UInt32(CURL_BLOB_COPY))
        _ = capstan_curl_set_pointer(handle, blob, &value)
      }
    case nil: break
    }
  }

  private static func hint(for code: CURLcode, _ message: String) -> String {
    switch code {
    case CURLE_OPERATION_TIMEDOUT: return "no answer in time (\(message))"
    case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE:
      return
        "the server's TLS certificate was not trusted (\(message)): give its CA, or fix the server's certificate"
    case CURLE_COULDNT_CONNECT: return "nothing answered (\(message))"
    case CURLE_SSL_CERTPROBLEM:
      return
        "the client certificate or key could not be used (\(message)): check that they are PEM and belong together"
    default: return message
    }
  }
}
