import CapstanCore
import CapstanSimulation
import Foundation
import FuzzSupport

/// Any bytes as a request trace (Azure CSV, Mooncake JSON Lines, the generic CSVs): read or
/// refused at a line, never a crash or a hang; one that reads is simulated closed loop under a
/// fixed policy, short traces only, to keep runs fast.
let policy = fixedPolicy(
  yaml: """
    controller: {interval: 15s}
    processes:
      worker:
        class: batch
        scaling: {metric: q, target: 4, min: 0, max: 8}
        simulation:
          slots: 2
          prefill_tokens_per_second: 4000
          decode_tokens_per_second: 50
          startup: 30s
          signals: {q: queue_depth}
          slo: {latency: e2e, bound: 30s, target: 95%}
    """)

func fuzzTrace(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
  guard let trace = try? Trace.parse(text, file: "fuzz"), let requests = try? trace.collect(),
    requests.count <= 2_000, (requests.last?.arrival ?? 0) < 3_600,
    requests.allSatisfy({ $0.workSeconds < 3_600 && $0.inputTokens < 1e7 && $0.outputTokens < 1e6 }),
    let simulator = try? Simulator(policy: policy, traces: ["worker": trace])
  else { return 0 }
  for baseline in [nil, Baseline.oracle] {
    guard let result = try? simulator.run(baseline) else { continue }
    // Every request the trace holds is counted, served or failed: none is lost.
    precondition(result.processes.first?.requests == requests.count, "a request was lost")
  }
  return 0
}

fuzz { bytes, count in
  guard let bytes else { return 0 }
  return fuzzTrace(bytes, count)
}
