import CapstanController
import CapstanCore
import Foundation
import Hummingbird
import Logging
import Prometheus

/// `/metrics` in the Prometheus text format and `/healthz`, on Hummingbird.
enum MonitoringServer {
  static func application(
    host: String, port: Int, registry: PrometheusCollectorRegistry, controller: Controller, logger: Logger
  ) -> some ApplicationProtocol {
    let router = Router()
    router.get("/metrics") { _, _ -> Response in
      Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(string: registry.emitToString())))
    }
    router.get("/healthz") { _, _ -> Response in
      let lastTick = await controller.lastTick
      let interval = await controller.policy.controller.interval
      // Healthy once the loop has ticked, and as long as it keeps ticking.
      let healthy = lastTick.map { Date().timeIntervalSince($0) < max(3 * interval, 30) } ?? false
      let body =
        #"{"status":"\#(healthy ? "ok" : "stalled")","last_tick":\#(lastTick.map { "\"\(RFC3339.string(from: $0))\"" } ?? "null")}"#
      return Response(
        status: healthy ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(string: body + "\n")))
    }
    return Application(
      router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
  }
}
