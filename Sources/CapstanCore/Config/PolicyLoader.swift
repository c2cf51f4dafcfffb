import Foundation
import Yams

/// A loaded policy and the warnings found on the way (errors make `load` throw instead).
public struct LoadedPolicy: Sendable {
  public var policy: Policy
  public var warnings: [Diagnostic]
}

/// Parses and validates a policy file. Pure: it takes the text; reading the file is the caller's.
public enum PolicyLoader {
  /// The file's bytes: text that is not UTF-8, or holds control characters YAML forbids, is
  /// refused at the line and column of the first bad byte, shown escaped.
  public static func load(data: Data, file: String) throws(PolicyLoadError) -> LoadedPolicy {
    var line = 1
    var column = 1
    var index = data.startIndex
    if data.starts(with: [0xEF, 0xBB, 0xBF]) { index += 3 }  // a byte-order mark is allowed
    while index < data.endIndex {
      let length = utf8SequenceLength(data, at: index)
      guard length > 0 else {
        throw PolicyLoadError(diagnostics: [
          Diagnostic(
            .error, at: FileLocation(file: file, line: line, column: column),
            "byte 0x\(String(data[index], radix: 16, uppercase: true)) is not UTF-8 text: save the file as UTF-8"
          )
        ])
      }
      let byte = data[index]
      if length == 1 && (byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D || byte == 0x7F) {
        throw PolicyLoadError(diagnostics: [
          Diagnostic(
            .error, at: FileLocation(file: file, line: line, column: column),
            "control character U+\(String(format: "%04X", byte)) is not allowed in a policy file: remove it")
        ])
      }
      if byte == 0x0A {
        line += 1
        column = 1
      } else {
        column += 1
      }
      index += length
    }
    return try load(yaml: String(decoding: data, as: UTF8.self), file: file)
  }

  /// The length of the valid UTF-8 sequence at `index`, or 0 where the bytes are not UTF-8.
  private static func utf8SequenceLength(_ data: Data, at index: Data.Index) -> Int {
    let lead = data[index]
    let (length, low, high): (Int, UInt8, UInt8)
    switch lead {
    case 0x00...0x7F: return 1
    case 0xC2...0xDF: (length, low, high) = (2, 0x80, 0xBF)
    case 0xE0: (length, low, high) = (3, 0xA0, 0xBF)
    case 0xE1...0xEC, 0xEE...0xEF: (length, low, high) = (3, 0x80, 0xBF)
    case 0xED: (length, low, high) = (3, 0x80, 0x9F)
    case 0xF0: (length, low, high) = (4, 0x90, 0xBF)
    case 0xF1...0xF3: (length, low, high) = (4, 0x80, 0xBF)
    case 0xF4: (length, low, high) = (4, 0x80, 0x8F)
    default: return 0
    }
    guard index + length <= data.endIndex else { return 0 }
    guard (low...high).contains(data[index + 1]) else { return 0 }
    for offset in 2..<length where !(0x80...0xBF).contains(data[index + offset]) { return 0 }
    return length
  }

  /// A policy file's node tree as the loader reads it, for any reader of the file (`tune`
  /// finds its knobs in it). With Yams' basic resolver: the decoder reads each scalar's text
  /// and never its tag, so the default resolver's regular expressions (ICU, for every scalar)
  /// would be work for nothing.
  package static func compose(yaml: String) throws -> Node? { try Yams.compose(yaml: yaml, .basic) }

  /// - Throws: `PolicyLoadError` with every error and warning found, in file order.
  public static func load(yaml: String, file: String) throws(PolicyLoadError) -> LoadedPolicy {
    let sink = DiagnosticSink(file: file)
    let node: Node?
    do {
      node = try compose(yaml: yaml)
    } catch {
      if case .duplicatedKeysInMapping(let keys, let context)? = error as? YamlError,
        let repeated = repeatedKeyLine(yaml, key: keys.first, first: context.mark)
      {
        // Where the key is given again, which is the line to change, and where it first was.
        sink.error(
          FileLocation(file: file, line: repeated, column: context.mark.column),
          "malformed YAML: '\(keys.first ?? "")' is given again here, after line \(context.mark.line): each key may appear once"
        )
        throw PolicyLoadError(diagnostics: sink.diagnostics)
      }
      sink.error(yamlErrorLocation(error, file: file), "malformed YAML: \(yamlErrorMessage(error))")
      throw PolicyLoadError(diagnostics: sink.diagnostics)
    }
    guard let node, !node.isNull else {
      sink.error(
        FileLocation(file: file, line: 1, column: 1),
        "the file is empty: a policy needs at least 'processes:' or 'autoscaling:'")
      throw PolicyLoadError(diagnostics: sink.diagnostics)
    }
    let raw: RawPolicyFile
    do {
      raw = try RawPolicyFile(from: YAMLNodeDecoder(node: node, sink: sink, codingPath: []))
    } catch {
      // The raw types are all optional text, so only a broken decoder gets here.
      sink.error(FileLocation(file: file, line: 1, column: 1), "could not read the file: \(error)")
      throw PolicyLoadError(diagnostics: sink.diagnostics)
    }
    let policy = PolicyValidator(sink: sink, file: file).validate(raw, root: node)
    guard !sink.hasErrors, let policy else { throw PolicyLoadError(diagnostics: sink.diagnostics) }
    return LoadedPolicy(policy: policy, warnings: sink.diagnostics)
  }

  /// The next line after the first that gives the same key at the same column, for block
  /// mappings; nil for flow mappings (`{a: 1, a: 2}`), reported at the first.
  private static func repeatedKeyLine(_ yaml: String, key: String?, first: Mark) -> Int? {
    guard let key else { return nil }
    // Every line break YAML knows (LF, CR, CR LF), so the numbers match the parser's.
    let lines = yaml.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
    guard first.line >= 1, first.column >= 1, first.line < lines.count else { return nil }
    for number in (first.line + 1)...lines.count {
      let text = lines[number - 1]
      let indent = text.prefix { $0 == " " }.count
      if indent + 1 < first.column && !text.trimmingCharacters(in: .whitespaces).isEmpty
        && !text.trimmingCharacters(in: .whitespaces).hasPrefix("#")
      {
        return nil  // the mapping ended
      }
      guard indent + 1 == first.column else { continue }
      let rest = text.dropFirst(indent)
      for quoted in [key, "\"\(key)\"", "'\(key)'"] where rest.hasPrefix(quoted) {
        if rest.dropFirst(quoted.count).drop(while: { $0 == " " }).first == ":" { return number }
      }
    }
    return nil
  }

  private static func yamlErrorLocation(_ error: any Error, file: String) -> FileLocation {
    if let error = error as? YamlError {
      switch error {
      case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
        return FileLocation(file: file, line: mark.line, column: mark.column)
      case .duplicatedKeysInMapping(_, let context):
        return FileLocation(file: file, line: context.mark.line, column: context.mark.column)
      default: break
      }
    }
    return FileLocation(file: file, line: 1, column: 1)
  }

  private static func yamlErrorMessage(_ error: any Error) -> String {
    if let error = error as? YamlError {
      switch error {
      case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
        .composer(let context, let problem, _, _):
        let prefix = context.map { "\($0.text), " } ?? ""
        return prefix + problem
          + " (check indentation and that every 'key: value' has a space after the colon)"
      case .duplicatedKeysInMapping(let duplicates, _):
        return
          "duplicate keys \(duplicates.map { "'\($0)'" }.joined(separator: ", ")): each key may appear once"
      default: break
      }
    }
    return "\(error)"
  }
}

/// Turns the raw file into a `Policy`, reporting every problem to the sink.
struct PolicyValidator {
  let sink: DiagnosticSink
  let file: String

  static var conditionPattern: Regex<(Substring, Substring, Substring, Substring)> {
    #/^\s*([A-Za-z_][A-Za-z0-9_:.\-]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$/#
  }

  func validate(_ raw: RawPolicyFile, root: Node) -> Policy? {
    let top = FileLocation(file: file, line: root.mark?.line ?? 1, column: root.mark?.column ?? 1)
    if raw.processes == nil && raw.autoscaling == nil {
      sink.error(top, "a policy file needs 'processes:', 'autoscaling:' or both")
    }
    let controller = validateController(raw.controller)
    let providers = (raw.providers?.entries ?? []).compactMap { validateProvider($0.name, $0.value) }
    let pools = (raw.gpuPools?.entries ?? []).compactMap { validatePool($0.name, $0.value) }
    let declaredSignals = raw.signals.map {
      Dictionary($0.entries.map { ($0.name.text, $0) }, uniquingKeysWith: { a, _ in a })
    }

    var references = SignalReferences(declared: declaredSignals.map { Set($0.keys) })
    let budgets = validateBudgets(raw.budgets, references: &references)
    var targets: [ScalingTarget] = []
    var processLocations: [String: FileLocation] = [:]
    for (name, process) in raw.processes?.entries ?? [] {
      processLocations[name.text] = name.location
      if let target = validateProcess(
        name, process, providers: providers, pools: pools, references: &references)
      {
        targets.append(target)
      }
    }

    var claimed: [String: String] = [:]
    for (name, rawPolicy) in raw.autoscaling?.entries ?? [] {
      let targetName: String
      if let process = rawPolicy.process {
        guard processLocations[process.text] != nil else {
          let hint =
            closestMatch(to: process.text, in: processLocations.keys).map { "; did you mean '\($0)'?" } ?? ""
          sink.error(
            process.location,
            "policy '\(name.text)' names process '\(process.text)', which is not declared under processes\(hint)"
          )
          continue
        }
        targetName = process.text
      } else {
        targetName = name.text
      }
      if let other = claimed[targetName] {
        sink.error(
          name.location,
          "process '\(targetName)' already has policy '\(other)': give each process one autoscaling entry")
        continue
      }
      claimed[targetName] = name.text
      if let index = targets.firstIndex(where: { $0.name == targetName }) {
        applyPolicy(name, rawPolicy, to: &targets[index], references: &references)
      } else {
        // A policy for no declared process stands for a target of its own name, so the seed's
        // autoscaling block is a complete policy file on its own.
        var target = standaloneTarget(named: name.text, location: name.location)
        applyPolicy(name, rawPolicy, to: &target, references: &references)
        if target.max == Int.max {
          sink.error(
            name.location,
            "policy '\(name.text)' scales no declared process and has no max_instances: add 'process:', a process named '\(name.text)', or a max_instances constraint"
          )
          target.max = target.min
        }
        targets.append(target)
      }
    }

    for (name, process) in raw.processes?.entries ?? [] {
      guard let rawPredictive = process.predictive,
        let index = targets.firstIndex(where: { $0.name == name.text })
      else { continue }
      targets[index].predictive = validatePredictive(
        rawPredictive, startup: targets[index].startup ?? targets[index].simulation?.startup, process: name,
        target: targets[index],
        interval: controller.interval, references: &references)
    }

    let declaredBudgets = raw.budgets?.entries.map(\.name.text) ?? []
    for (name, process) in raw.processes?.entries ?? [] {
      guard process.budget != nil, let index = targets.firstIndex(where: { $0.name == name.text }) else {
        continue
      }
      targets[index].budgetName = validateBudgetName(
        process.budget, process: name.text, declared: declaredBudgets, tree: budgets)
    }
    let variantGroups = expandVariants(
      raw, targets: &targets, providers: providers, pools: pools, references: &references)
    checkBudgetsCount(budgets, targets: targets)

    for target in targets where target.min == 0 && target.workloadClass == .batch {
      checkWakeable(target, location: target.location ?? top)
    }
    let signals = validateSignals(declaredSignals, references: references, targets: targets)
    for target in targets {
      guard let predictive = target.predictive, predictive.history == .prometheus,
        let spec = signals.first(where: { $0.name == predictive.signal })
      else { continue }
      if case .prometheus = spec.source { continue }
      sink.error(
        predictive.location ?? top,
        "processes.\(target.name).predictive has history: prometheus, which reads the signal's own query, but '\(predictive.signal)' is not read from Prometheus: give it a prometheus: source, or history: {file: RECORDING.csv}"
      )
    }
    for target in targets {
      checkCeilings(
        target, providers: providers, pools: pools, location: processLocations[target.name] ?? top)
    }
    checkSettingsTakeEffect(raw, targets: targets, providers: providers)
    var policy = Policy(
      controller: controller, signals: signals, targets: targets, providers: providers, gpuPools: pools,
      budgets: budgets)
    policy.variantGroups = variantGroups
    if let backend = raw.backend, let settings = validateBackend(backend) { policy.backend = settings }
    if raw.backend == nil && raw.kubernetes != nil { policy.backend = .kubernetes(KubernetesSettings()) }
    if case .kubernetes = policy.backend {
      policy.backend = .kubernetes(validateKubernetes(raw.kubernetes))
      // A variant's workload is written under its variant, and named after its target.
      let variantWorkloads = (raw.processes?.entries ?? []).flatMap { process in
        (process.value.variants?.entries ?? []).map {
          let name = VariantGroup.targetName(process: process.name.text, variant: $0.name.text)
          return (name, (RawScalar(text: name, location: $0.name.location), $0.value.kubernetes))
        }
      }
      let workloads = Dictionary(
        (raw.processes?.entries ?? []).map { ($0.name.text, ($0.name, $0.value.kubernetes)) }
          + variantWorkloads,
        uniquingKeysWith: { a, _ in a })
      for index in policy.targets.indices {
        let target = policy.targets[index]
        let name = RawScalar(text: target.name, location: target.location ?? top)
        if let (process, rawWorkload) = workloads[target.name], let rawWorkload {
          policy.targets[index].kubernetes = validateWorkload(rawWorkload, process: process)
        } else if let workloadName = defaultWorkloadName(name) {
          policy.targets[index].kubernetes = KubernetesWorkload(kind: .deployment, name: workloadName)
        }
      }
    } else if let kubernetes = raw.kubernetes {
      sink.warning(
        (kubernetes.kubeconfig ?? kubernetes.context ?? kubernetes.namespace)?.location ?? top,
        "'kubernetes:' has no effect: the backend is not kubernetes")
    }
    expandSeriesSignals(&policy)
    return policy
  }

  // MARK: Sections

  func validateController(_ raw: RawController?) -> ControllerSettings {
    var settings = ControllerSettings()
    if let interval = raw?.interval, let value = duration(interval) {
      if value < 1 {
        sink.error(interval.location, "controller.interval is \(interval.text): tick at least every 1s")
      } else {
        settings.interval = value
      }
    }
    if let staleness = raw?.staleness, let value = duration(staleness) { settings.staleness = value }
    return settings
  }

  func validateProvider(_ name: RawScalar, _ raw: RawProvider) -> ProviderLimits? {
    let provider = ProviderLimits(
      name: name.text,
      requestsPerMinute: raw.requestsPerMinute.flatMap { positive($0, "requests per minute") },
      tokensPerMinute: raw.tokensPerMinute.flatMap { positive($0, "tokens per minute") },
      maxConcurrentRequests: raw.maxConcurrentRequests.flatMap { positive($0, "concurrent requests") },
      safetyMargin: raw.safetyMargin.flatMap { fraction($0, "safety_margin") } ?? PolicyDefaults.safetyMargin)
    if raw.requestsPerMinute == nil && raw.tokensPerMinute == nil && raw.maxConcurrentRequests == nil {
      sink.error(
        name.location,
        "provider '\(name.text)' has no limits: give requests_per_minute, tokens_per_minute or max_concurrent_requests"
      )
    }
    return provider
  }

  func validatePool(_ name: RawScalar, _ raw: RawGPUPool) -> GPUPool? {
    guard let gpus = raw.gpus else {
      sink.error(name.location, "GPU pool '\(name.text)' needs 'gpus:', the number of whole GPUs it holds")
      return nil
    }
    guard let count = wholeGPUs(gpus) else { return nil }
    return GPUPool(name: name.text, gpus: count)
  }

}

/// Which processes read which signals, so undeclared names and per-replica owners can be checked.
struct SignalReferences {
  struct Use {
    var locations: [FileLocation] = []
    var users: Set<String> = []
    var perReplicaOf: String?
  }

  let declared: Set<String>?
  var uses: [String: Use] = [:]

  mutating func note(_ raw: RawScalar, perReplicaOf owner: String?, usedBy user: String) {
    uses[raw.text, default: Use()].locations.append(raw.location)
    uses[raw.text, default: Use()].users.insert(user)
    if let owner { uses[raw.text, default: Use()].perReplicaOf = owner }
  }
}
