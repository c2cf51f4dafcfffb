import CapstanBackends
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import ServiceLifecycle

/// The external scaler's gRPC server, plain HTTP/2 as KEDA's `scalerAddress` expects by
/// default, run as one of `capstan run`'s services.
public struct KEDAScalerService: Service {
  private let host: String
  private let port: Int
  private let scaler: KEDAExternalScaler
  private let board: KEDABackend
  private let logger: Logger

  public init(host: String, port: Int, scaler: KEDAExternalScaler, board: KEDABackend, logger: Logger) {
    self.host = host
    self.port = port
    self.scaler = scaler
    self.board = board
    self.logger = logger
  }

  /// `HOST:PORT`, an IPv6 host in brackets; or what is wrong with it.
  public static func address(_ text: String) -> Result<(host: String, port: Int), AddressError> {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
      (0...65535).contains(port)
    else {
      return .failure(AddressError(text: text))
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { return .failure(AddressError(text: text)) }
    return .success((host, port))
  }

  public struct AddressError: Error, CustomStringConvertible {
    public var text: String
    public var description: String {
      "--keda-scaler '\(text)' must be HOST:PORT, such as 0.0.0.0:9465 or [::]:9465"
    }
  }

  public func run() async throws {
    let socketAddress: GRPCNIOTransportCore.SocketAddress =
      host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
    let transport = HTTP2ServerTransport.Posix(address: socketAddress, transportSecurity: .plaintext)
    let server = GRPCServer(transport: transport, services: [scaler])
    try await withGracefulShutdownHandler {
      try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await server.serve() }
        do {
          let bound = try await transport.listeningAddress
          logger.notice("KEDA external scaler listening", metadata: ["address": "\(bound)"])
        } catch {
          // serve() throws the reason; this only says where it was meant to listen.
          logger.error("KEDA external scaler could not listen", metadata: ["address": "\(host):\(port)"])
        }
      }
    } onGracefulShutdown: {
      // KEDA's StreamIsActive calls stay open; the server's shutdown waits for them to end.
      Task { await board.finish() }
      server.beginGracefulShutdown()
    }
  }
}
