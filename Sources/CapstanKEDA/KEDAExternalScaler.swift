import CapstanBackends
import GRPCCore
import Logging

/// KEDA's external scaler (`externalscaler.proto`), answered from Capstan's decisions.
///
/// A ScaledObject's `external` trigger names a Capstan process in its metadata (`process:`).
/// The metric is the count Capstan decided, with a target of 1, so the HPA that KEDA drives
/// lands on that count; the process is active while the count is above 0, so KEDA's scale to
/// and from zero follows Capstan's.
public struct KEDAExternalScaler: Externalscaler_ExternalScaler.SimpleServiceProtocol {
  /// The trigger metadata key that names the process.
  public static let processKey = "process"

  private let board: KEDABackend
  private let processes: @Sendable () async -> [String]
  private let logger: Logger

  /// `processes` lists the policy's processes now (a reload may change them).
  public init(board: KEDABackend, processes: @escaping @Sendable () async -> [String], logger: Logger) {
    self.board = board
    self.processes = processes
    self.logger = logger
  }

  /// The metric's name for a process, as `GetMetricSpec` gives it and the HPA shows it (after
  /// KEDA's `s0-` prefix).
  public static func metricName(_ process: String) -> String { "capstan-\(process)" }

  public func isActive(
    request: Externalscaler_ScaledObjectRef, context: ServerContext
  ) async throws -> Externalscaler_IsActiveResponse {
    let count = try await decided(for: request)
    return .with { $0.result = count > 0 }
  }

  public func streamIsActive(
    request: Externalscaler_ScaledObjectRef, response: RPCWriter<Externalscaler_IsActiveResponse>,
    context: ServerContext
  ) async throws {
    let process = try await known(request)
    var last: Bool?
    // Ends when the client goes (the task is cancelled) or Capstan stops (the board finishes).
    for await count in await board.changes(of: process) {
      let active = count > 0
      guard active != last else { continue }
      last = active
      try await response.write(.with { $0.result = active })
    }
  }

  public func getMetricSpec(
    request: Externalscaler_ScaledObjectRef, context: ServerContext
  ) async throws -> Externalscaler_GetMetricSpecResponse {
    let process = try await known(request)
    return .with {
      $0.metricSpecs = [
        .with {
          $0.metricName = Self.metricName(process)
          $0.targetSize = 1
          $0.targetSizeFloat = 1
        }
      ]
    }
  }

  public func getMetrics(
    request: Externalscaler_GetMetricsRequest, context: ServerContext
  ) async throws -> Externalscaler_GetMetricsResponse {
    let process = try await known(request.scaledObjectRef)
    let count = try await decided(process, for: request.scaledObjectRef)
    return .with {
      $0.metricValues = [
        .with {
          $0.metricName = request.metricName.isEmpty ? Self.metricName(process) : request.metricName
          $0.metricValue = Int64(count)
          $0.metricValueFloat = Double(count)
        }
      ]
    }
  }

  /// The process a request names, which the policy must have.
  private func known(_ request: Externalscaler_ScaledObjectRef) async throws -> String {
    let names = await processes()
    guard let process = request.scalerMetadata[Self.processKey], !process.isEmpty else {
      throw RPCError(
        code: .invalidArgument,
        message:
          "ScaledObject \(Self.describe(request)): its external trigger's metadata needs '\(Self.processKey)', one of the policy's processes: \(names.joined(separator: ", "))"
      )
    }
    guard names.contains(process) else {
      logger.warning(
        "KEDA asked for a process the policy does not have",
        metadata: ["process": "\(process)", "scaled_object": "\(Self.describe(request))"])
      throw RPCError(
        code: .notFound,
        message:
          "ScaledObject \(Self.describe(request)) names process '\(process)', which the policy does not have; it has: \(names.joined(separator: ", "))"
      )
    }
    return process
  }

  private func decided(for request: Externalscaler_ScaledObjectRef) async throws -> Int {
    try await decided(known(request), for: request)
  }

  private func decided(_ process: String, for request: Externalscaler_ScaledObjectRef) async throws -> Int {
    guard let count = await board.count(of: process) else {
      // KEDA keeps the current count on an error (or applies the ScaledObject's fallback).
      throw RPCError(
        code: .unavailable,
        message:
          "Capstan has not read process '\(process)' yet: its first tick has not run; KEDA keeps the count until it has"
      )
    }
    return count
  }

  private static func describe(_ request: Externalscaler_ScaledObjectRef) -> String {
    request.namespace.isEmpty ? request.name : "\(request.namespace)/\(request.name)"
  }
}
