import CapstanBackends
import CapstanCore
import CapstanKubernetes
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Ticks the controller at the policy's interval until a graceful shutdown (SIGTERM, SIGINT):
/// then the tick in flight finishes, the replicas are drained, and the state and audit log are
/// left complete.
public struct ControllerService: Service {
  let controller: Controller

  public init(controller: Controller) { self.controller = controller }

  public func run() async throws {
    var next = Date()
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
      await controller.tick(now: Date())
      let interval = await controller.policy.controller.interval
      next = max(next.addingTimeInterval(interval), Date())
      let wait = next.timeIntervalSinceNow
      try? await cancelWhenGracefulShutdown {
        try await Task.sleep(nanoseconds: UInt64(max(0, wait) * 1e9))
      }
    }
    await controller.shutdown()
  }
}

/// Reloads the policy on SIGHUP. A valid policy takes effect at the next tick; an invalid one is
/// refused with its errors in the log and the audit log, and the running policy goes on.
public struct PolicyReloadService: Service {
  public typealias Loader = @Sendable (String) -> Result<LoadedPolicy, PolicyLoadError>

  let controller: Controller
  let file: String
  let load: Loader

  public init(controller: Controller, file: String, load: @escaping Loader) {
    self.controller = controller
    self.file = file
    self.load = load
  }

  public func run() async throws {
    let hangups = await UnixSignalsSequence(trapping: .sighup)
    for await _ in hangups.cancelOnGracefulShutdown() {
      switch load(file) {
      case .success(let loaded): await controller.reload(loaded, file: file, now: Date())
      case .failure(let problems):
        await controller.rejectReload(problems.diagnostics, file: file, now: Date())
      }
    }
  }
}

/// Runs leader election on a Lease every retry period and tells the controller when this
/// process starts or stops leading. On a graceful shutdown a leader gives the lease up, so a
/// follower takes over at once.
public struct LeaderElectionService: Service {
  let elector: LeaderElector
  let controller: Controller

  public init(elector: LeaderElector, controller: Controller) {
    self.elector = elector
    self.controller = controller
  }

  public func run() async throws {
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
      await elector.step(now: Date())
      await controller.observeLeadership(
        leading: elector.isLeading(at: Date()), identity: elector.identity, holder: elector.holder,
        now: Date())
      try? await cancelWhenGracefulShutdown {
        try await Task.sleep(nanoseconds: UInt64(elector.settings.retryPeriod * 1e9))
      }
    }
    await elector.release()
  }
}
