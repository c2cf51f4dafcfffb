import CapstanCore
import CapstanSimulation
import Foundation
import FuzzSupport

/// Any bytes as a simulation's input: a first line that starts with `#` holds the process's
/// `simulation:` settings as a YAML flow mapping, a second that starts with `#` the command
/// line's shaping (`RATE TILE_SECONDS DIURNAL`); the rest is a request trace (Azure CSV,
/// Mooncake JSON Lines, the generic CSVs). Each part is read or refused with an error, never a
/// crash or a hang; what reads is bounded as `simulate` bounds it and run closed loop, with the
/// oracle, on inputs that stay short (a day at most, 20,000 requests), to keep runs fast.
let defaultSettings =
  "{slots: 2, prefill_tokens_per_second: 4000, decode_tokens_per_second: 50, startup: 30s, signals: {q: queue_depth}, slo: {latency: e2e, bound: 30s, target: 95%}}"

func policy(simulation: String) -> Policy? {
  try? PolicyLoader.load(
    yaml: """
      controller: {interval: 15s}
      processes:
        worker:
          class: batch
          scaling: {metric: q, target: 4, min: 0, max: 8}
          simulation: \(simulation)
      """, file: "fuzz.yaml"
  ).policy
}

func fuzzTrace(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
  var text = Substring(String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self))
  var settings = defaultSettings
  var shaping: [Double] = []
  for part in 0..<2 where text.hasPrefix("#") {
    let line = text.prefix { $0 != "\n" }
    text = text.dropFirst(line.count + 1)
    if part == 0 {
      settings = String(line.dropFirst())
    } else {
      shaping = line.dropFirst().split(separator: " ").compactMap { Double($0) }
    }
  }
  guard text.count < 1 << 20, !settings.contains("\n"), let policy = policy(simulation: settings),
    var trace = try? Trace.parse(String(text), file: "fuzz")
  else { return 0 }
  // As `simulate`'s options are checked: a rate from 0.001 to 1000, a tile up to 366 days, a
  // daily shape from 1 to 1000.
  let rate = shaping.count > 0 ? shaping[0] : 1
  let tile = shaping.count > 1 ? shaping[1] : 0
  let diurnal = shaping.count > 2 ? shaping[2] : 1
  guard rate.isFinite, rate >= 0.001, rate <= 1000, tile.isFinite, tile >= 0, tile <= 366 * 86_400,
    diurnal.isFinite, diurnal >= 1, diurnal <= 1000
  else { return 0 }
  trace = trace.scaled(rate: rate)
  if tile > 0 {
    guard let tiled = try? trace.tiled(to: tile) else { return 0 }
    trace = tiled
  }
  trace = trace.diurnal(peakToTrough: diurnal)
  guard (try? trace.checkBounds(interval: policy.controller.interval)) != nil else { return 0 }
  // Short runs only: the first 20,000 requests, within a day.
  var stream = try? trace.stream()
  var requests = 0
  var last = 0.0
  while let request = try? stream?.next() {
    requests += 1
    last = request.arrival
    if requests > 20_000 || last > 86_400 { return 0 }
  }
  guard let simulator = try? Simulator(policy: policy, traces: ["worker": trace]) else { return 0 }
  for baseline in [nil, Baseline.oracle] {
    guard let result = try? simulator.run(baseline) else { continue }
    // Every request the trace holds is counted, served or failed: none is lost.
    precondition(result.processes.first?.requests == requests, "a request was lost")
  }
  return 0
}

fuzz { bytes, count in
  guard let bytes else { return 0 }
  return fuzzTrace(bytes, count)
}
