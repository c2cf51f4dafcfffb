import CapstanCore
import Foundation

/// One process's simulated fleet fed by its trace, event by event between the engine's ticks.
/// Requests wait in one FIFO queue and go to a free slot of a ready replica (the least loaded).
/// A replica costs from the moment it is asked for; it takes work after its startup delay. A
/// removed replica takes no new work, finishes what it has up to the drain timeout, and what it
/// cuts short fails.
///
/// The trace streams through: a fleet holds only the requests waiting or in flight, and scores
/// each request into its `Tally` once its fate is known.
struct Fleet {
  struct Replica {
    var id: Int
    var requestedAt: Double
    var readyAt: Double
    var drainDeadline: Double?
    var inFlight: Set<Int> = []
    var draining: Bool { drainDeadline != nil }
  }

  struct Waiting {
    /// The request's place in the trace, from 0.
    var number: Int
    var request: Trace.Request
  }

  /// A request being served: what its score will be once it ends.
  struct Running {
    var minute: Int
    var latency: Double
  }

  let target: ScalingTarget
  let settings: SimulationSettings
  let kind: Trace.Kind
  let interval: TimeInterval
  private(set) var tally: Tally
  private(set) var replicas: [Replica] = []
  private var nextID = 0
  private var arrivals: Trace.Stream
  /// The next request to arrive, read ahead.
  private var pending: Trace.Request?
  private var arrived = 0
  /// The last request's arrival, once the trace has run out.
  private(set) var lastArrival: Double?
  private var queue: [Waiting] = []
  private var queueHead = 0
  private var running: [Int: Running] = [:]
  /// In flight: (finish time, replica id, request number), a min-heap on time.
  private var completions = MinHeap<Completion>()
  private(set) var now = 0.0
  private(set) var replicaSeconds = 0.0
  private(set) var peakReplicas = 0
  /// Starts in the last minute, for `latency_p95`: (start time, latency).
  private var recentStarts: [(time: Double, latency: Double)] = []
  /// Arrivals in the last tick, for `request_rate` and `token_rate`: (arrival, tokens).
  private var recentArrivals: [(time: Double, tokens: Double)] = []

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
    start replicas: Int, windowMinutes: Int? = nil
  ) throws {
    self.target = target
    self.settings = settings
    self.kind = trace.kind
    self.interval = interval
    tally = Tally(slo: settings.slo, windowMinutes: windowMinutes)
    arrivals = try trace.stream()
    pending = try arrivals.next()
    for _ in 0..<replicas { add(readyAt: 0) }
  }

  // MARK: What the engine sees

  var status: ReplicaStatus {
    let serving = replicas.filter { !$0.draining }
    return ReplicaStatus(
      current: serving.count, ready: serving.filter { $0.readyAt <= now }.count,
      draining: replicas.count - serving.count)
  }

  /// Replicas not draining, ready or not.
  var serving: Int {
    var count = 0
    for index in replicas.indices where replicas[index].drainDeadline == nil { count += 1 }
    return count
  }

  func measure(_ quantity: SimulationSettings.Quantity) -> Double? {
    let waiting = queue.count - queueHead
    switch quantity {
    case .queueDepth: return Double(waiting)
    case .oldestWait: return waiting > 0 ? now - queue[queueHead].request.arrival : 0
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
      for arrival in recentArrivals.reversed() where arrival.time > now - interval {
        count += 1
        tokens += arrival.tokens
      }
      return (quantity == .requestRate ? count : tokens) / interval
    case .latencyP95:
      let latencies = recentStarts.filter { $0.time > now - 60 }.map(\.latency)
      return latencies.isEmpty ? nil : percentile(latencies.sorted(), 0.95)
    }
  }

  // MARK: Time

  /// Runs every arrival, start, completion and drain up to `time`.
  mutating func advance(to time: Double) throws {
    while true {
      let arrival = pending?.arrival ?? .infinity
      let completion = completions.peek?.time ?? .infinity
      // The next replica to become ready, and the next drain to run out, without allocating:
      // this runs for every event.
      var ready = Double.infinity
      var deadline = Double.infinity
      for index in replicas.indices {
        if let drain = replicas[index].drainDeadline {
          deadline = min(deadline, drain)
        } else if replicas[index].readyAt > now {
          ready = min(ready, replicas[index].readyAt)
        }
      }
      let next = min(arrival, completion, ready, deadline)
      guard next <= time else { break }
      pass(to: next)
      if completion == next, let done = completions.pop() {
        finish(done)
      } else if deadline == next {
        cutShort(at: next)
      } else if arrival == next, let request = pending {
        try arrive(request)
      }
      dispatch()
    }
    pass(to: time)
    dispatch()
    // Keep only what the signals look back on.
    if let stale = recentArrivals.firstIndex(where: { $0.time > now - interval }) {
      recentArrivals.removeFirst(stale)
    } else {
      recentArrivals.removeAll()
    }
    tally.close(minutesBefore: openMinute)
  }

  private mutating func arrive(_ request: Trace.Request) throws {
    queue.append(Waiting(number: arrived, request: request))
    arrived += 1
    tally.arrive(minute: Self.minute(request), work: serviceTime(request))
    recentArrivals.append((request.arrival, request.inputTokens + request.outputTokens))
    pending = try arrivals.next()
    if pending == nil { lastArrival = request.arrival }
  }

  static func minute(_ request: Trace.Request) -> Int { Int(saturating: request.arrival / 60) }

  /// The oldest minute with a request whose fate is still open: minutes before it are final.
  private var openMinute: Int {
    var open = pending.map(Self.minute) ?? .max
    if queueHead < queue.count { open = min(open, Self.minute(queue[queueHead].request)) }
    for request in running.values { open = min(open, request.minute) }
    return open
  }

  private mutating func pass(to time: Double) {
    guard time > now else { return }
    replicaSeconds += Double(replicas.count) * (time - now)
    now = time
  }

  private mutating func dispatch() {
    while queueHead < queue.count {
      // The least loaded ready replica with a free slot (the first of equals).
      var slot: Int?
      var load = settings.slots
      for index in replicas.indices
      where replicas[index].drainDeadline == nil && replicas[index].readyAt <= now
        && replicas[index].inFlight.count < load
      {
        slot = index
        load = replicas[index].inFlight.count
      }
      guard let slot else { return }
      let waiting = queue[queueHead]
      queueHead += 1
      if queueHead >= 4096 && queueHead * 2 >= queue.count {
        queue.removeFirst(queueHead)
        queueHead = 0
      }
      let request = waiting.request
      let wait = now - request.arrival
      let service = serviceTime(request)
      let latency: Double
      switch settings.slo.latency {
      case .queueWait: latency = wait
      case .ttft: latency = wait + request.inputTokens / (settings.prefillTokensPerSecond ?? .infinity)
      case .e2e: latency = wait + service
      }
      running[waiting.number] = Running(minute: Self.minute(request), latency: latency)
      recentStarts.append((now, latency))
      if recentStarts.count > 4096 { recentStarts.removeAll { $0.time <= now - 60 } }
      replicas[slot].inFlight.insert(waiting.number)
      completions.push(Completion(time: now + service, replica: replicas[slot].id, request: waiting.number))
    }
  }

  func serviceTime(_ request: Trace.Request) -> Double {
    Self.serviceTime(request, kind: kind, settings: settings)
  }

  /// How long a request holds one slot: its input at the prefill rate and its output at the
  /// decode rate (LLM), or its `work_seconds` (jobs).
  static func serviceTime(_ request: Trace.Request, kind: Trace.Kind, settings: SimulationSettings) -> Double
  {
    switch kind {
    case .jobs: return request.workSeconds
    case .llm:
      return request.inputTokens / (settings.prefillTokensPerSecond ?? .infinity) + request.outputTokens
        / (settings.decodeTokensPerSecond ?? .infinity)
    }
  }

  private mutating func finish(_ done: Completion) {
    var found: Int?
    for index in replicas.indices where replicas[index].id == done.replica { found = index }
    guard let index = found else { return }
    replicas[index].inFlight.remove(done.request)
    if let served = running.removeValue(forKey: done.request) {
      tally.served(minute: served.minute, latency: served.latency)
    }
    if replicas[index].draining && replicas[index].inFlight.isEmpty { replicas.remove(at: index) }
  }

  /// A drain that ran out of time: what the replica still serves is cut short.
  private mutating func cutShort(at time: Double) {
    for index in replicas.indices.reversed() where (replicas[index].drainDeadline ?? .infinity) <= time {
      for request in replicas[index].inFlight {
        if let cut = running.removeValue(forKey: request) { tally.failed(minute: cut.minute) }
      }
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

  /// Every request of the trace has arrived.
  var exhausted: Bool { pending == nil }

  /// Every request arrived has been served: nothing waits, nothing is in flight.
  var idle: Bool { pending == nil && queueHead == queue.count && completions.isEmpty }

  /// Ends the run: what is in flight is scored as it started; what never got a slot fails.
  mutating func close() {
    for number in running.keys.sorted() {
      if let served = running[number] { tally.served(minute: served.minute, latency: served.latency) }
    }
    running = [:]
    for waiting in queue[queueHead...] { tally.failed(minute: Self.minute(waiting.request)) }
    queue = []
    queueHead = 0
    tally.close(minutesBefore: .max)
  }
}
