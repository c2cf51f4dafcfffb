import CapstanCore
import Foundation

/// One process's simulated fleet fed by its trace, event by event between the engine's ticks.
/// Requests wait in one FIFO queue and go to a free slot of a ready replica (the least loaded).
/// A replica costs from the moment it is asked for; it takes work after its startup delay. A
/// removed replica takes no new work, finishes what it has up to the drain timeout, and what it
/// cuts short fails.
struct Fleet {
  struct Replica {
    var id: Int
    var requestedAt: Double
    var readyAt: Double
    var drainDeadline: Double?
    var inFlight: Set<Int> = []
    var draining: Bool { drainDeadline != nil }
  }

  /// What became of each request.
  enum Outcome: Equatable {
    case waiting
    case started(at: Double, latency: Double)
    case failed
  }

  let target: ScalingTarget
  let settings: SimulationSettings
  let trace: Trace
  let interval: TimeInterval
  private(set) var outcomes: [Outcome]
  private(set) var replicas: [Replica] = []
  private var nextID = 0
  private var nextArrival = 0
  private var queue: [Int] = []
  private var queueHead = 0
  /// In flight: (finish time, replica id, request index), a min-heap on time.
  private var completions = MinHeap<Completion>()
  private(set) var now = 0.0
  private(set) var replicaSeconds = 0.0
  private(set) var peakReplicas = 0
  /// Starts in the last minute, for `latency_p95`: (start time, latency).
  private var recentStarts: [(time: Double, latency: Double)] = []

  struct Completion: Comparable {
    var time: Double
    var replica: Int
    var request: Int
    static func < (a: Completion, b: Completion) -> Bool {
      (a.time, a.replica, a.request) < (b.time, b.replica, b.request)
    }
  }

  init(
    target: ScalingTarget, settings: SimulationSettings, trace: Trace, interval: TimeInterval,
    start replicas: Int
  ) {
    self.target = target
    self.settings = settings
    self.trace = trace
    self.interval = interval
    outcomes = Array(repeating: .waiting, count: trace.requests.count)
    for _ in 0..<replicas { add(readyAt: 0) }
  }

  // MARK: What the engine sees

  var status: ReplicaStatus {
    let serving = replicas.filter { !$0.draining }
    return ReplicaStatus(
      current: serving.count, ready: serving.filter { $0.readyAt <= now }.count,
      draining: replicas.count - serving.count)
  }

  func measure(_ quantity: SimulationSettings.Quantity) -> Double? {
    let waiting = queue.count - queueHead
    switch quantity {
    case .queueDepth: return Double(waiting)
    case .oldestWait: return waiting > 0 ? now - trace.requests[queue[queueHead]].arrival : 0
    case .utilization:
      let ready = replicas.filter { !$0.draining && $0.readyAt <= now }
      guard !ready.isEmpty else { return nil }
      let busy = ready.reduce(0) { $0 + $1.inFlight.count }
      return Double(busy) / Double(ready.count * settings.slots) * 100
    case .concurrency:
      return Double(waiting + replicas.reduce(0) { $0 + $1.inFlight.count })
    case .requestRate, .tokenRate:
      var count = 0.0
      var tokens = 0.0
      var index = nextArrival - 1
      while index >= 0, trace.requests[index].arrival > now - interval {
        count += 1
        tokens += trace.requests[index].inputTokens + trace.requests[index].outputTokens
        index -= 1
      }
      return (quantity == .requestRate ? count : tokens) / interval
    case .latencyP95:
      let latencies = recentStarts.filter { $0.time > now - 60 }.map(\.latency)
      return latencies.isEmpty ? nil : percentile(latencies.sorted(), 0.95)
    }
  }

  // MARK: Time

  /// Runs every arrival, start, completion and drain up to `time`.
  mutating func advance(to time: Double) {
    while true {
      let arrival = nextArrival < trace.requests.count ? trace.requests[nextArrival].arrival : .infinity
      let completion = completions.peek?.time ?? .infinity
      let ready = replicas.filter { $0.readyAt > now && !$0.draining }.map(\.readyAt).min() ?? .infinity
      let deadline = replicas.compactMap(\.drainDeadline).min() ?? .infinity
      let next = min(arrival, completion, ready, deadline)
      guard next <= time else { break }
      pass(to: next)
      if completion == next, let done = completions.pop() {
        finish(done)
      } else if deadline == next {
        cutShort(at: next)
      } else if arrival == next {
        queue.append(nextArrival)
        nextArrival += 1
      }
      dispatch()
    }
    pass(to: time)
    dispatch()
  }

  private mutating func pass(to time: Double) {
    guard time > now else { return }
    replicaSeconds += Double(replicas.count) * (time - now)
    now = time
  }

  private mutating func dispatch() {
    while queueHead < queue.count {
      guard
        let slot = replicas.indices.filter({
          !replicas[$0].draining && replicas[$0].readyAt <= now
            && replicas[$0].inFlight.count < settings.slots
        }).min(by: { replicas[$0].inFlight.count < replicas[$1].inFlight.count })
      else { return }
      let index = queue[queueHead]
      queueHead += 1
      let request = trace.requests[index]
      let wait = now - request.arrival
      let service = serviceTime(request)
      let latency: Double
      switch settings.slo.latency {
      case .queueWait: latency = wait
      case .ttft: latency = wait + request.inputTokens / (settings.prefillTokensPerSecond ?? .infinity)
      case .e2e: latency = wait + service
      }
      outcomes[index] = .started(at: now, latency: latency)
      recentStarts.append((now, latency))
      if recentStarts.count > 4096 { recentStarts.removeAll { $0.time <= now - 60 } }
      replicas[slot].inFlight.insert(index)
      completions.push(Completion(time: now + service, replica: replicas[slot].id, request: index))
    }
  }

  func serviceTime(_ request: Trace.Request) -> Double {
    switch trace.kind {
    case .jobs: return request.workSeconds
    case .llm:
      return request.inputTokens / (settings.prefillTokensPerSecond ?? .infinity) + request.outputTokens
        / (settings.decodeTokensPerSecond ?? .infinity)
    }
  }

  private mutating func finish(_ done: Completion) {
    guard let index = replicas.firstIndex(where: { $0.id == done.replica }) else { return }
    replicas[index].inFlight.remove(done.request)
    if replicas[index].draining && replicas[index].inFlight.isEmpty { replicas.remove(at: index) }
  }

  /// A drain that ran out of time: what the replica still serves is cut short.
  private mutating func cutShort(at time: Double) {
    for index in replicas.indices.reversed() where (replicas[index].drainDeadline ?? .infinity) <= time {
      for request in replicas[index].inFlight { outcomes[request] = .failed }
      let id = replicas[index].id
      completions.removeAll { $0.replica == id }
      replicas.remove(at: index)
    }
  }

  // MARK: Actions

  mutating func apply(_ action: ScaleAction) {
    let serving = replicas.filter { !$0.draining }.count
    if action.to > serving {
      for _ in serving..<action.to { add(readyAt: now + settings.startup) }
    } else {
      // The newest go first, as the local supervisor does.
      for _ in action.to..<serving {
        guard let index = replicas.lastIndex(where: { !$0.draining }) else { break }
        if replicas[index].inFlight.isEmpty {
          replicas.remove(at: index)
        } else {
          replicas[index].drainDeadline = now + action.drainTimeout
        }
      }
    }
    peakReplicas = max(peakReplicas, replicas.count)
    // A replica with no startup delay takes work at once.
    dispatch()
  }

  private mutating func add(readyAt: Double) {
    replicas.append(Replica(id: nextID, requestedAt: now, readyAt: readyAt))
    nextID += 1
    peakReplicas = max(peakReplicas, replicas.count)
  }

  /// Every request arrived has been served: nothing waits, nothing is in flight.
  var idle: Bool {
    nextArrival == trace.requests.count && queueHead == queue.count && completions.isEmpty
  }

  /// Requests that never got a slot by the end count as failed.
  mutating func close() {
    for index in queue[queueHead...] { outcomes[index] = .failed }
    queueHead = queue.count
  }
}

/// The value at quantile `q` of sorted values, by the nearest-rank method.
func percentile(_ sorted: [Double], _ q: Double) -> Double {
  guard !sorted.isEmpty else { return 0 }
  let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
  return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// A binary min-heap.
struct MinHeap<Element: Comparable> {
  private var items: [Element] = []
  var peek: Element? { items.first }
  var isEmpty: Bool { items.isEmpty }

  mutating func push(_ element: Element) {
    items.append(element)
    var child = items.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard items[child] < items[parent] else { break }
      items.swapAt(child, parent)
      child = parent
    }
  }

  mutating func pop() -> Element? {
    guard !items.isEmpty else { return nil }
    items.swapAt(0, items.count - 1)
    let top = items.removeLast()
    var parent = 0
    while true {
      let left = 2 * parent + 1
      let right = left + 1
      var smallest = parent
      if left < items.count && items[left] < items[smallest] { smallest = left }
      if right < items.count && items[right] < items[smallest] { smallest = right }
      guard smallest != parent else { break }
      items.swapAt(parent, smallest)
      parent = smallest
    }
    return top
  }

  mutating func removeAll(where shouldRemove: (Element) -> Bool) {
    let kept = items.filter { !shouldRemove($0) }
    items = []
    for element in kept { push(element) }
  }
}
