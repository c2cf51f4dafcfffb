import CapstanCore
import Foundation

/// libFuzzer's entry point, for a program that has its own main (as SwiftPM executables do).
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
  _ argc: UnsafeMutablePointer<Int32>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// Hands the process to libFuzzer, which calls `body` with each input.
public func fuzz(_ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
  var argc = CommandLine.argc
  var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
  exit(runDriver(&argc, &argv, body))
}

/// A harness's own policy, which loads or the harness is broken.
public func fixedPolicy(yaml: String) -> Policy {
  do {
    return try PolicyLoader.load(yaml: yaml, file: "fuzz.yaml").policy
  } catch {
    fatalError("the fuzz harness's policy does not load: \(error)")
  }
}

/// Two processes sized on their SLOs, for the harnesses that drive the SLO sizing: `vllm`, with
/// a TTFT objective judged over an hour's error budget, an ITL one, a forecast, a GPU pool and
/// a budget; and `inference`, whose H100 and L4 variants learn their capacities.
public let sloProcesses = fixedPolicy(
  yaml: """
    budgets:
      org: {daily_budget_usd: 300}
    gpu_pools:
      gpus: {gpus: 12}
    processes:
      vllm:
        cost_per_hour_usd: 4.10
        startup: 2m
        budget: org
        resources: {gpu: 1, gpu_pool: gpus}
        scaling:
          min: 1
          max: 8
          slo:
            - {latency: ttft, percentile: 99, bound: 2s, measured: ttft_p99, within: ttft_within, period: 1h}
            - {latency: itl, percentile: 95, bound: 50ms, measured: itl_p99}
          load: request_rate
          running: requests_running
          waiting: requests_waiting
          measured_over: 1m
        predictive: {seasonality: daily}
      inference:
        startup: 2m
        budget: org
        scaling:
          min: 1
          max: 16
          slo: {latency: ttft, percentile: 99, bound: 2s, measured: pool_ttft_p99}
          load: pool_request_rate
          running: pool_requests_running
          waiting: pool_requests_waiting
        variants:
          h100:
            cost_per_hour_usd: 4.10
            capacity: 1
            max: 8
            learn: {load: h100_rate, running: h100_running, measured: {ttft: h100_ttft}}
          l4:
            cost_per_hour_usd: 1.20
            capacity: 0.5
            max: 4
            learn: {load: l4_rate, running: l4_running, measured: {ttft: l4_ttft}}
    """)
