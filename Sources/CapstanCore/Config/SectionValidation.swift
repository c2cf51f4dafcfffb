import Foundation

// Signals and their sources, backends, local processes, and the checks across targets.
extension PolicyValidator {
  // MARK: Signals and ceilings

  func validateSignals(
    _ declared: [String: (name: RawScalar, value: RawSignal)]?, references: SignalReferences,
    targets: [ScalingTarget]
  ) -> [SignalSpec] {
    var specs: [SignalSpec] = []
    if let declared {
      for (name, use) in references.uses where declared[name] == nil {
        for location in use.locations {
          let hint = closestMatch(to: name, in: declared.keys).map { "; did you mean '\($0)'?" } ?? ""
          sink.error(location, "signal '\(name)' is not declared under signals\(hint)")
        }
      }
      for (name, entry) in declared.sorted(by: { $0.value.name.location < $1.value.name.location }) {
        var owner = references.uses[name]?.perReplicaOf
        let source = validateSource(entry.name, entry.value)
        // A series signal becomes a signal per process, so per replica is per process too.
        var perProcess = false
        if case .prometheus(let settings)? = source, settings.seriesLabel != nil { perProcess = true }
        if let flag = entry.value.perReplica {
          guard let value = Bool(flag.text) ?? ["yes": true, "no": false][flag.text] else {
            sink.error(flag.location, "per_replica is '\(flag.text)': use true or false")
            continue
          }
          let users = references.uses[name]?.users ?? []
          if value, users.count > 1, !perProcess {
            sink.error(
              flag.location,
              "signal '\(name)' is per replica but read by \(users.sorted().joined(separator: " and ")): a per-replica signal belongs to one process"
            )
          } else if value, owner == nil {
            owner = users.first
          }
        }
        if references.uses[name] == nil {
          sink.warning(entry.name.location, "signal '\(name)' is declared but no process or policy reads it")
        }
        specs.append(
          SignalSpec(
            name: name, location: entry.name.location, perReplicaOf: owner, source: source))
      }
    } else {
      for (name, use) in references.uses.sorted(by: { $0.key < $1.key }) {
        specs.append(SignalSpec(name: name, location: use.locations.first, perReplicaOf: use.perReplicaOf))
      }
    }
    return specs
  }

  func validateBackend(_ raw: RawBackend) -> BackendSettings? {
    if let command = raw.command {
      guard let argv = argv(command.argv, what: "backend.command.argv", at: raw.location) else { return nil }
      var statusArgv: [String]?
      if let rawStatus = command.statusArgv {
        statusArgv = self.argv(rawStatus, what: "backend.command.status_argv", at: raw.location)
      }
      return .command(
        CommandBackendSettings(
          argv: argv, statusArgv: statusArgv, timeout: command.timeout.flatMap { timeout($0) } ?? 30))
    }
    guard let name = raw.name else {
      sink.error(raw.location, "backend needs local, kubernetes, or command: {argv: [...]}")
      return nil
    }
    switch name.text {
    case "local": return .local
    case "kubernetes": return .kubernetes(KubernetesSettings())
    default:
      sink.error(
        name.location, "backend is '\(name.text)': use local, kubernetes, or command: {argv: [PROGRAM, ...]}")
      return nil
    }
  }

  func validateLocal(_ raw: RawLocalProcess, process: RawScalar) -> LocalProcessSettings? {
    guard
      let command = argv(
        raw.command, what: "local.command of process '\(process.text)'", at: process.location)
    else { return nil }
    var environment: [String: String] = [:]
    for (key, value) in raw.env?.entries ?? [] {
      if ["CAPSTAN_PROCESS", "CAPSTAN_REPLICA", "PORT"].contains(key.text) {
        sink.error(key.location, "local.env sets \(key.text), which Capstan sets for each replica: remove it")
      }
      environment[key.text] = value.text
    }
    var portBase: Int?
    if let rawPort = raw.portBase, let value = count(rawPort, "a port number") {
      if value < 1 || value > 65_000 {
        sink.error(
          rawPort.location,
          "port_base is \(value): use a port between 1 and 65000, leaving room for the replicas")
      } else {
        portBase = value
      }
    }
    var readyPath: String?
    if let rawPath = raw.readyPath {
      if !rawPath.text.hasPrefix("/") || rawPath.text.contains(where: \.isWhitespace) {
        sink.error(
          rawPath.location,
          "ready_path is '\(rawPath.text)': give the path a replica answers 2xx on once it serves, such as /health"
        )
      } else if raw.portBase == nil {
        sink.error(
          rawPath.location,
          "ready_path needs port_base: each replica's readiness is asked at http://127.0.0.1:PORT\(rawPath.text)"
        )
      } else {
        readyPath = rawPath.text
      }
    }
    return LocalProcessSettings(
      command: command, environment: environment, workingDirectory: raw.cwd?.text, portBase: portBase,
      readyPath: readyPath)
  }

  func argv(_ raw: RawArgv?, what: String, at location: FileLocation) -> [String]? {
    guard let raw else {
      sink.error(location, "\(what) is missing: give the program and its arguments as a list")
      return nil
    }
    guard !raw.items.isEmpty else {
      if !raw.refused { sink.error(raw.location, "\(what) is empty: name the program to run first") }
      return nil
    }
    return raw.items.map(\.text)
  }

  func validateSource(_ name: RawScalar, _ raw: RawSignal) -> SignalSource? {
    let sources = raw.sources.compactMap { $0.validate(name, self) }
    if raw.sources.count > 1 {
      sink.error(
        name.location,
        "signal '\(name.text)' has \(raw.sources.map(\.key).joined(separator: " and ")): give it one source")
      return nil
    }
    return sources.first
  }

  /// A value from a fixed set, or an error at its position listing the choices.
  /// The default when the key is absent; nil only when it is there and not one of the choices.
  func choice<Value: RawRepresentable & CaseIterable>(
    _ raw: RawScalar?, _ key: String, default fallback: Value, hint: String = ""
  ) -> Value? where Value.RawValue == String {
    guard let raw else { return fallback }
    if let value = Value(rawValue: raw.text) { return value }
    let names = Value.allCases.map(\.rawValue)
    let listed =
      names.dropLast().joined(separator: ", ") + (names.count > 1 ? " or " : "") + (names.last ?? "")
    sink.error(raw.location, "\(key) is '\(raw.text)': use \(listed)\(hint)")
    return nil
  }

  /// An http:// or https:// URL, or an error naming the signal and what to give instead.
  func httpURL(_ raw: RawScalar?, signal name: RawScalar, reads: String, hint: String) -> RawScalar? {
    guard let raw, raw.text.hasPrefix("http://") || raw.text.hasPrefix("https://") else {
      sink.error(
        raw?.location ?? name.location,
        "signal '\(name.text)' \(reads) but its url is \(raw.map { "'\($0.text)'" } ?? "missing"): \(hint)")
      return nil
    }
    return raw
  }

  func timeout(_ raw: RawScalar) -> TimeInterval? {
    positiveDuration(raw, ifZero: "timeout is \(raw.text): give a source at least 1ms")
  }

  func positiveDuration(_ raw: RawScalar, ifZero message: String? = nil) -> TimeInterval? {
    guard let value = duration(raw) else { return nil }
    guard value > 0 else {
      sink.error(raw.location, message ?? "'\(raw.text)' must be longer than zero")
      return nil
    }
    return value
  }

  /// A process that a scale_down rule may take to zero needs something that can bring its first
  /// replica back: a total to track (utilization does not exist at zero replicas) or a scale_up
  /// rule. With no rule at all, Capstan only keeps it inside [min, max].
  func checkWakeable(_ target: ScalingTarget, location: FileLocation) {
    guard target.down.rule != nil else { return }
    if target.tracking?.kind == .averageValue || target.up.rule != nil { return }
    if target.tracking?.kind == .utilization { return }  // reported where min was set to 0
    sink.error(
      location,
      "'\(target.name)' may scale to 0 (min 0) but nothing can bring it back: give it a plain-number scaling.target on a total such as queue depth, or a scale_up rule"
    )
  }

  func checkCeilings(
    _ target: ScalingTarget, providers: [ProviderLimits], pools: [GPUPool], location: FileLocation
  ) {
    // A max below min is reported at the max itself, where it is written.
    for ceiling in StaticCeiling.all(for: target, providers: providers, pools: pools)
    where ceiling.replicas < target.min && ceiling.reason != .maxInstances {
      sink.error(
        location,
        "'\(target.name)' has min \(target.min) but \(ceiling.explanation): lower min or raise the limit")
    }
  }

}

extension PolicyValidator {
  /// Warnings for settings that are valid but cannot take effect as written.
  func checkSettingsTakeEffect(_ raw: RawPolicyFile, targets: [ScalingTarget], providers: [ProviderLimits]) {
    // Activation decides between 0 and 1 replica: with min 1 or more it never does.
    for (name, process) in raw.processes?.entries ?? [] {
      guard let activation = process.scaling?.activationThreshold,
        let target = targets.first(where: { $0.name == name.text }), target.min >= 1
      else { continue }
      sink.warning(
        activation.location,
        "activation_threshold of process '\(name.text)' takes effect only at min: 0 (it decides between no replica and one); min is \(target.min)"
      )
    }
    // A replica that runs holds at least one request in flight, so the rate-limit ceiling stops
    // the processes on a provider at the limit × margin together, whatever their max says.
    for (name, rawProvider) in raw.providers?.entries ?? [] {
      guard let provider = providers.first(where: { $0.name == name.text }),
        let limit = provider.maxConcurrentRequests
      else { continue }
      let members = targets.filter { $0.rateLimit?.provider == provider.name }
      guard !members.isEmpty else { continue }
      let slots = Int(saturating: (limit * provider.safetyMargin + 1e-9).rounded(.down))
      let most = members.reduce(0) { $0.saturatingAdd($1.max) }
      guard most > slots else { continue }
      sink.warning(
        rawProvider.maxConcurrentRequests?.location ?? name.location,
        "max_concurrent_requests \(format(limit)) × safety margin \(format(provider.safetyMargin)) is \(slots) requests in flight, fewer than the \(most) replicas \(members.map(\.name).joined(separator: ", ")) may run by their max: each replica holds at least one, so the rate-limit ceiling stops them at \(slots) together; lower max, or raise the limit"
      )
    }
  }
}
