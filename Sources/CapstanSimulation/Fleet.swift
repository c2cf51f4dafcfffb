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
///
/// A process with variants is one fleet of several kinds of replica, one a variant: a replica
/// of a variant serves `capacity` times as fast as one of capacity 1 (its prefill and decode
/// rates, or a job's work, scaled by it), and costs its own price.
struct Fleet {
  /// One kind of replica: the process's own, or one of its variants.
  struct Kind {
    /// The target the engine scales for it: the process, or the variant.
    var target: ScalingTarget
    /// How fast it serves, against the process's simulation section's rates: 1, or the
    /// variant's capacity.
    var speed: Double
    /// How much one replica-second of it weighs in `cost`: 1 for a process without variants
    /// (the oracle minimises replica-hours), and a variant's dollars an hour (the oracle
    /// minimises dollars).
    var weight: Double
  }

  struct Replica {
    var id: Int
    var kind: Int
    var speed: Double
    var requestedAt: Double
    var readyAt: Double
    var drainDeadline: Double?
    /// Requests it serves now: its completions are in the fleet's heap.
    var busy = 0
    var draining: Bool { drainDeadline != nil }
  }

  struct Waiting {
    /// The request's place in the trace, from 0.
    var number: Int
    var request: Trace.Request
  }

  /// The process: its name, its min and max (in capacity units where it has variants).
  let target: ScalingTarget
  let kinds: [Kind]
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
  private(set) var queue: [Waiting] = []
  private(set) var queueHead = 0
  /// Every request in flight, a min-heap on its finish time: each carries its score, so a
  /// request's end needs no lookup.
  private var completions = MinHeap<Completion>()
  private(set) var now = 0.0
  private(set) var replicaSeconds = 0.0
  /// Per kind, its replica-seconds.
  private(set) var kindSeconds: [Double]
  /// Replica-seconds, each weighed by its kind's `weight`: what the oracle's search minimises.
  private(set) var cost = 0.0
  private(set) var peakReplicas = 0
  /// Starts in the last minute, for `latency_p95` and the latencies a server exports.
  private(set) var recentStarts: [Started] = []

  /// Arrivals in the last tick, for `request_rate` and `token_rate`: (arrival, tokens).
  private(set) var recentArrivals: [(time: Double, tokens: Double)] = []

  struct Completion: Comparable {
    var time: Double
    var replica: Int
    /// The request's place in the trace, from 0.
    var request: Int
    /// Its minute of arrival and its latency: what it scores once it ends.
    var minute: Int
    var latency: Double
    static func < (a: Completion, b: Completion) -> Bool {
      (a.time, a.replica, a.request) < (b.time, b.replica, b.request)
    }
  }

  /// - Parameter kinds: the process's variants; nil: the process's own replicas alone.
  /// - Parameter replicas: per kind, the replicas ready at the start.
  init(
    target: ScalingTarget, kinds: [Kind]? = nil, settings: SimulationSettings, trace: Trace,
    interval: TimeInterval, start replicas: [Int], windowMinutes: Int? = nil, latencies: Bool = true
  ) throws {
    self.target = target
    self.kinds = kinds ?? [Kind(target: target, speed: 1, weight: 1)]
    self.settings = settings
    self.kind = trace.kind
    self.interval = interval
    kindSeconds = Array(repeating: 0, count: self.kinds.count)
    tally = Tally(slo: settings.slo, windowMinutes: windowMinutes, keepsLatencies: latencies)
    arrivals = try trace.stream()
    pending = try arrivals.next()
    for (kind, count) in replicas.enumerated() where kind < self.kinds.count {
      for _ in 0..<max(count, 0) { add(kind, readyAt: 0) }
    }
  }

  /// Which kind scales as `process`; nil for a name not in this fleet.
  func kind(of process: String) -> Int? { kinds.firstIndex { $0.target.name == process } }

  // MARK: What the engine sees

  /// Of one kind (every replica where there is one kind).
  func status(_ kind: Int = 0) -> ReplicaStatus {
    var status = ReplicaStatus(current: 0, ready: 0)
    for replica in replicas where replica.kind == kind {
      if replica.draining {
        status.draining += 1
      } else {
        status.current += 1
        if replica.readyAt <= now { status.ready += 1 }
      }
    }
    return status
  }

  /// Replicas of one kind not draining, ready or not.
  func serving(_ kind: Int = 0) -> Int {
    var count = 0
    for index in replicas.indices where replicas[index].drainDeadline == nil && replicas[index].kind == kind {
      count += 1
    }
    return count
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
    tally.arrive(minute: Self.minute(request), work: serviceTime(request, speed: 1))
    recentArrivals.append((request.arrival, request.inputTokens + request.outputTokens))
    pending = try arrivals.next()
    if pending == nil { lastArrival = request.arrival }
  }

  static func minute(_ request: Trace.Request) -> Int { Int(saturating: request.arrival / 60) }

  /// The oldest minute with a request whose fate is still open: minutes before it are final.
  private var openMinute: Int {
    var open = pending.map(Self.minute) ?? .max
    if queueHead < queue.count { open = min(open, Self.minute(queue[queueHead].request)) }
    for request in completions.elements { open = min(open, request.minute) }
    return open
  }

  private mutating func pass(to time: Double) {
    guard time > now else { return }
    let span = time - now
    replicaSeconds += Double(replicas.count) * span
    if kinds.count == 1 {
      kindSeconds[0] += Double(replicas.count) * span
      cost += Double(replicas.count) * span * kinds[0].weight
    } else {
      for replica in replicas {
        kindSeconds[replica.kind] += span
        cost += span * kinds[replica.kind].weight
      }
    }
    now = time
  }

  private mutating func dispatch() {
    while queueHead < queue.count {
      // The least loaded ready replica with a free slot (of equals, the fastest, then the first).
      var slot: Int?
      var load = settings.slots
      var fastest = 0.0
      for index in replicas.indices
      where replicas[index].drainDeadline == nil && replicas[index].readyAt <= now
        && (replicas[index].busy < load
          || slot != nil && replicas[index].busy == load && replicas[index].speed > fastest)
      {
        slot = index
        load = replicas[index].busy
        fastest = replicas[index].speed
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
      let speed = replicas[slot].speed
      let prefill = request.inputTokens / ((settings.prefillTokensPerSecond ?? .infinity) * speed)
      var service = serviceTime(request, speed: speed)
      var itl = 1 / ((settings.decodeTokensPerSecond ?? .infinity) * speed)
      var ttft = wait + prefill
      if let law = settings.itl, kind == .llm {
        // The batch it joins, itself included, sets every step it takes; its first token
        // comes one step after its prefill.
        itl = law.interTokenLatency(batch: replicas[slot].busy + 1) / speed
        service = prefill + request.outputTokens * itl
        ttft += itl
      }
      let latency: Double
      switch settings.slo.latency {
      case .queueWait: latency = wait
      case .ttft: latency = ttft
      case .e2e: latency = wait + service
      }
      recentStarts.append(
        Started(
          time: now, latency: latency, wait: wait, ttft: ttft, itl: itl, e2e: wait + service,
          kind: replicas[slot].kind))
      if recentStarts.count > 4096 { recentStarts.removeAll { $0.time <= now - 60 } }
      replicas[slot].busy += 1
      completions.push(
        Completion(
          time: now + service, replica: replicas[slot].id, request: waiting.number,
          minute: Self.minute(request),
          latency: latency))
    }
  }

  /// On a replica of `speed`.
  func serviceTime(_ request: Trace.Request, speed: Double) -> Double {
    Self.serviceTime(request, kind: kind, settings: settings) / speed
  }

  /// How long a request holds one slot: its input at the prefill rate and its output at the
  /// decode rate (LLM), or its `work_seconds` (jobs).
  static func serviceTime(_ request: Trace.Request, kind: Trace.Kind, settings: SimulationSettings) -> Double
  {
    switch kind {
    case .jobs: return request.workSeconds
    case .llm:
      let prefill = request.inputTokens / (settings.prefillTokensPerSecond ?? .infinity)
      // With a step law, as in a full batch: the most a request holds its slot.
      if let law = settings.itl {
        return prefill + request.outputTokens * law.interTokenLatency(batch: settings.slots)
      }
      return prefill + request.outputTokens / (settings.decodeTokensPerSecond ?? .infinity)
    }
  }

  private mutating func finish(_ done: Completion) {
    var found: Int?
    for index in replicas.indices where replicas[index].id == done.replica { found = index }
    guard let index = found else { return }
    replicas[index].busy -= 1
    tally.served(minute: done.minute, latency: done.latency)
    if replicas[index].draining && replicas[index].busy == 0 { replicas.remove(at: index) }
  }

  /// A drain that ran out of time: what the replica still serves is cut short.
  private mutating func cutShort(at time: Double) {
    for index in replicas.indices.reversed() where (replicas[index].drainDeadline ?? .infinity) <= time {
      let id = replicas[index].id
      completions.removeAll {
        guard $0.replica == id else { return false }
        tally.failed(minute: $0.minute)
        return true
      }
      replicas.remove(at: index)
    }
  }

  // MARK: Actions

  /// Scales the kind the action names (the process's own where it has no variants).
  mutating func apply(_ action: ScaleAction) {
    let kind = self.kind(of: action.process) ?? 0
    let serving = self.serving(kind)
    if action.to > serving {
      // A variant's own startup where it sets one; else the simulation section's.
      let startup = kinds[kind].target.variant?.startup ?? settings.startup
      for _ in serving..<action.to {
        add(kind, readyAt: now + startup)
      }
    } else {
      // The newest go first, as the local supervisor does.
      for _ in action.to..<serving {
        guard let index = replicas.lastIndex(where: { !$0.draining && $0.kind == kind }) else { break }
        if replicas[index].busy == 0 {
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

  private mutating func add(_ kind: Int, readyAt: Double) {
    replicas.append(
      Replica(id: nextID, kind: kind, speed: kinds[kind].speed, requestedAt: now, readyAt: readyAt))
    nextID += 1
    peakReplicas = max(peakReplicas, replicas.count)
  }

  /// Every request of the trace has arrived.
  var exhausted: Bool { pending == nil }

  /// Every request arrived has been served: nothing waits, nothing is in flight.
  var idle: Bool { pending == nil && queueHead == queue.count && completions.isEmpty }

  /// Ends the run: what is in flight is scored as it started; what never got a slot fails.
  mutating func close() {
    for request in completions.elements.sorted(by: { $0.request < $1.request }) {
      tally.served(minute: request.minute, latency: request.latency)
    }
    completions = MinHeap()
    for waiting in queue[queueHead...] { tally.failed(minute: Self.minute(waiting.request)) }
    queue = []
    queueHead = 0
    tally.close(minutesBefore: .max)
  }
}
