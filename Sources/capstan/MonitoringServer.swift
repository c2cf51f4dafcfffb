import CapstanController
import CapstanCore
import Foundation
import Hummingbird
import Logging

/// `/metrics` in the Prometheus text format, `/healthz`, `/status` and `/shares`, on Hummingbird.
enum MonitoringServer {
  struct Health: Encodable {
    var status: String
    var lastTick: String?
    /// Whether this process acts: true without leader election.
    var leader: Bool
    /// Who holds the lease, with leader election.
    var leaderIdentity: String?
    /// Why the controller is not acting, when it is not.
    var problem: String?

    enum CodingKeys: String, CodingKey {
      case status, leader, problem
      case lastTick = "last_tick"
      case leaderIdentity = "leader_identity"
    }

    func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(status, forKey: .status)
      try container.encode(lastTick, forKey: .lastTick)
      try container.encode(leader, forKey: .leader)
      try container.encodeIfPresent(leaderIdentity, forKey: .leaderIdentity)
      try container.encodeIfPresent(problem, forKey: .problem)
    }
  }

  static func application(
    host: String, port: Int, metrics: ShardedPrometheusMetrics, controller: Controller, logger: Logger
  ) -> some ApplicationProtocol {
    let router = Router()
    router.get("/metrics") { _, _ -> Response in
      Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(string: metrics.emit())))
    }
    router.get("/healthz") { _, _ -> Response in
      let lastTick = await controller.lastTick
      let interval = await controller.policy.controller.interval
      // Healthy once the loop has ticked, and as long as it keeps ticking; a follower is healthy.
      let ticking = lastTick.map { Date().timeIntervalSince($0) < max(3 * interval, 30) } ?? false
      // Not acting because its audit log or state cannot be written: unhealthy, and says why.
      let problem = await controller.writeFailure
      let healthy = ticking && problem == nil
      let health = Health(
        status: problem != nil ? "not_acting" : ticking ? "ok" : "stalled",
        lastTick: lastTick.map(RFC3339.string(from:)),
        leader: await controller.isLeading(at: Date()), leaderIdentity: await controller.leaderIdentity,
        problem: problem)
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      let body = String(decoding: (try? encoder.encode(health)) ?? Data(), as: UTF8.self)
      return Response(
        status: healthy ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(string: body + "\n")))
    }
    // Each rate-limited process's share per replica, as the share files hold it.
    router.get("/status") { _, _ -> Response in
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      let status = await controller.status(now: Date())
      let body = String(decoding: (try? encoder.encode(status)) ?? Data("{}".utf8), as: UTF8.self)
      return Response(
        status: .ok, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(string: body + "\n")))
    }
    router.get("/shares") { _, _ -> Response in
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      let body = String(
        decoding: (try? encoder.encode(await controller.shares)) ?? Data("{}".utf8), as: UTF8.self)
      return Response(
        status: .ok, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(string: body + "\n")))
    }
    return Application(
      router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
  }
}
