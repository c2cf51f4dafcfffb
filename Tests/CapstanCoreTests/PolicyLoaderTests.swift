import Foundation
import Testing

@testable import CapstanCore

@Suite("Policy files")
struct PolicyLoaderTests {
  @Test("the seed's process block loads as written")
  func seedProcesses() throws {
    let url = fixturesURL().appendingPathComponent("seed-000-processes.yaml")
    let policy = try PolicyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path).policy
    #expect(policy.targets.map(\.name) == ["web", "inference", "embedding", "orchestrator"])
    let inference = try #require(policy.target(named: "inference"))
    #expect(
      inference.tracking
        == TargetTracking(
          metric: "gpu_utilization", kind: .utilization, target: 70, tolerance: 0.1, activationThreshold: 0))
    #expect(inference.resources.gpus == 1)
    #expect(inference.resources.gpuMemoryBytes == 40.0 * 1_073_741_824)
    #expect((inference.min, inference.max) == (1, 8))
    let embedding = try #require(policy.target(named: "embedding"))
    #expect(embedding.tracking?.kind == .averageValue)
    #expect(embedding.tracking?.target == 100)
    let web = try #require(policy.target(named: "web"))
    #expect(web.metric == "request_rate" && web.tracking == nil)
    #expect(web.resources.cpu == 1 && web.resources.memoryBytes == 2 * 1_073_741_824)
    #expect(policy.target(named: "orchestrator")?.resources.cpu == 0.5)
  }

  @Test("the seed's autoscaling block loads as written, as a target of its own name")
  func seedAutoscaling() throws {
    let url = fixturesURL().appendingPathComponent("seed-000-autoscaling.yaml")
    let loaded = try PolicyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
    let target = try #require(loaded.policy.target(named: "inference_workers"))
    #expect((target.min, target.max) == (1, 8))
    #expect(target.up.rule?.match == .any)
    #expect(target.up.rule?.conditions.map(\.metric) == ["request_queue_depth", "p95_latency"])
    #expect(target.up.rule?.conditions[1].threshold == Threshold(value: 5, unit: .seconds))
    #expect(target.up.cooldown == 300 && target.up.step == 1)
    #expect(target.down.rule?.match == .all && target.down.rule?.duration == 600)
    #expect(target.down.rule?.conditions.first?.threshold == Threshold(value: 20, unit: .percent))
    #expect(target.drainTimeout == 60)
    #expect(target.maxCostPerHourUSD == 100)
    #expect(target.budget?.dailyBudgetUSD == 2000)
    #expect(target.budget?.alertThreshold == 0.8 && target.budget?.actionThreshold == 0.95)
    #expect(target.budget?.timeZone.secondsFromGMT() == 0)
    // The seed gives no cost per instance, so its ceiling and budget cannot bind: say so.
    #expect(loaded.warnings.count == 2)
    #expect(loaded.warnings.allSatisfy { $0.severity == .warning })
  }

  @Test("the example policy validates, with the ceilings the README quotes")
  func examplePolicy() throws {
    let url = fixturesURL().deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
      .appendingPathComponent("policies/llm-serving.yaml")
    let loaded = try PolicyLoader.load(yaml: String(contentsOf: url, encoding: .utf8), file: url.path)
    #expect(loaded.warnings.isEmpty)
    let inference = try #require(loaded.policy.target(named: "inference"))
    #expect(StaticCeiling.binding(for: inference, in: loaded.policy).reason == .costCeiling)
    #expect(StaticCeiling.binding(for: inference, in: loaded.policy).replicas == 7)
    let worker = try #require(loaded.policy.target(named: "agent-worker"))
    #expect(StaticCeiling.binding(for: worker, in: loaded.policy).reason == .rateLimitCeiling)
    #expect(StaticCeiling.binding(for: worker, in: loaded.policy).replicas == 8)
    #expect(worker.workloadClass == .batch && worker.min == 0)
    #expect(worker.budget?.timeZone.identifier == "America/Los_Angeles")
  }

  static let invalidFiles: [String] = {
    let folder = fixturesURL().appendingPathComponent("invalid")
    return ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
      $0.hasSuffix(".yaml")
    }.sorted()
  }()

  /// Each file in Fixtures/invalid lists, in `# expect: LINE:COLUMN MESSAGE` comments, every error
  /// it must produce: the exact position and message, and no other error.
  @Test("bad files report every error at its line and column", arguments: invalidFiles)
  func invalidCorpus(name: String) throws {
    let text = try String(
      contentsOf: fixturesURL().appendingPathComponent("invalid/\(name)"), encoding: .utf8)
    let expected = text.split(separator: "\n").compactMap { line -> String? in
      guard line.hasPrefix("# expect: ") else { return nil }
      return "\(name):" + line.dropFirst("# expect: ".count)
    }
    #expect(!expected.isEmpty, "\(name) lists no expectations")
    do {
      _ = try PolicyLoader.load(yaml: text, file: name)
      Issue.record("\(name) loaded without errors")
    } catch {
      let found = error.errors.map {
        "\($0.location.file):\($0.location.line):\($0.location.column) \($0.message)"
      }
      #expect(found == expected)
    }
  }

  @Test("the corpus is there")
  func corpusPresent() {
    #expect(Self.invalidFiles.count >= 9)
  }

  @Test("an empty file says what a policy needs")
  func emptyFile() {
    #expect(throws: PolicyLoadError.self) { try PolicyLoader.load(yaml: "", file: "empty.yaml") }
    do {
      _ = try PolicyLoader.load(yaml: "# nothing\n", file: "empty.yaml")
    } catch {
      #expect(
        error.description
          == "empty.yaml:1:1: error: the file is empty: a policy needs at least 'processes:' or 'autoscaling:'"
      )
    }
  }

  @Test(
    "target forms",
    arguments: [
      ("target: 70%", TargetTracking.Kind.utilization, 70.0),
      ("target: 100", .averageValue, 100),
      ("{target: 70, target_type: utilization}", .utilization, 70),
      ("{target: 2.5, target_type: average_value}", .averageValue, 2.5),
    ])
  func targetForms(scaling: String, kind: TargetTracking.Kind, value: Double) throws {
    let body = scaling.hasPrefix("{") ? String(scaling.dropFirst().dropLast()) : scaling
    let yaml = """
      processes:
        p:
          scaling: {metric: m, min: 1, max: 4, \(body)}
      """
    let tracking = try #require(try loadPolicy(yaml).target(named: "p")?.tracking)
    #expect(tracking.kind == kind && tracking.target == value)
  }

  @Test("a percent target cannot be an average value")
  func percentAverage() {
    let yaml =
      "processes:\n  p:\n    scaling: {metric: m, min: 1, max: 4, target: 70%, target_type: average_value}\n"
    #expect(throws: PolicyLoadError.self) { try PolicyLoader.load(yaml: yaml, file: "t.yaml") }
  }

  @Test("defaults by class")
  func classDefaults() throws {
    let policy = try loadPolicy(
      """
      processes:
        api: {scaling: {min: 1, max: 4}}
        jobs: {class: batch, scaling: {metric: q, target: 10, min: 0, max: 4}}
      """)
    let api = try #require(policy.target(named: "api"))
    let jobs = try #require(policy.target(named: "jobs"))
    #expect(api.workloadClass == .interactive)
    #expect(api.up.stabilization == 0 && api.down.stabilization == 300)
    #expect(jobs.up.stabilization == 30 && jobs.down.stabilization == 600)
    #expect(api.drainTimeout == 30)
    #expect(policy.controller.interval == 15 && policy.controller.staleness == 120)
  }

  @Test("a second policy for the same process is refused")
  func twoPolicies() {
    let yaml = """
      processes:
        p: {scaling: {min: 1, max: 4}}
      autoscaling:
        p: {scale_up: {conditions: [{metric: a > 1}]}}
        other: {process: p, scale_up: {conditions: [{metric: a > 2}]}}
      """
    #expect {
      try PolicyLoader.load(yaml: yaml, file: "t.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.message
        == "process 'p' already has policy 'p': give each process one autoscaling entry"
    }
  }

  @Test("a policy without a process or max_instances says how to fix it")
  func standaloneWithoutMax() {
    let yaml = "autoscaling:\n  lonely:\n    scale_up: {conditions: [{metric: a > 1}]}\n"
    #expect {
      try PolicyLoader.load(yaml: yaml, file: "t.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.message.contains("has no max_instances") == true
    }
  }

  @Test("per-replica signals are owned by one process")
  func perReplicaOwner() throws {
    let policy = try loadPolicy(
      """
      signals:
        gpu: {}
        tokens_per_replica: {per_replica: true}
        queue: {}
      processes:
        model: {scaling: {metric: gpu, target: 70%, min: 1, max: 4}}
        worker: {scaling: {metric: queue, target: 10, min: 1, max: 4}}
      autoscaling:
        model:
          scale_down: {conditions: [{metric: tokens_per_replica < 100}]}
      """)
    #expect(policy.signals.first { $0.name == "gpu" }?.perReplicaOf == "model")
    #expect(policy.signals.first { $0.name == "tokens_per_replica" }?.perReplicaOf == "model")
    #expect(policy.signals.first { $0.name == "queue" }?.perReplicaOf == nil)
  }

  @Test(
    "bytes that are not UTF-8, and control characters, are refused at their line and column, escaped",
    arguments: [
      (
        Data("processes:\n  w: {scaling: {min: 1, max: 2}}\n  # caf".utf8) + Data([0xE9, 0x0A]),
        "p.yaml:3:8: error: byte 0xE9 is not UTF-8 text"
      ),
      (
        Data("processes:\n  w:\u{7} {scaling: {min: 1, max: 2}}\n".utf8),
        "p.yaml:2:5: error: control character U+0007"
      ),
    ])
  func badBytes(data: Data, message: String) {
    #expect {
      try PolicyLoader.load(data: data, file: "p.yaml")
    } throws: { error in
      "\(error)".hasPrefix(message) && !"\(error)".contains("\u{7}")
    }
  }

  @Test("a byte-order mark is allowed")
  func byteOrderMark() throws {
    let data = Data([0xEF, 0xBB, 0xBF]) + Data("processes:\n  w: {scaling: {min: 1, max: 2}}\n".utf8)
    #expect(try PolicyLoader.load(data: data, file: "p.yaml").policy.targets.map(\.name) == ["w"])
  }

  @Test("local.ready_path is refused without port_base, and where it is not a path")
  func readyPathRefused() {
    let said = refusal(
      """
      processes:
        a:
          scaling: {min: 1, max: 2}
          local: {command: [./a], ready_path: /health}
        b:
          scaling: {min: 1, max: 2}
          local: {command: [./b], port_base: 9000, ready_path: health}
      """)
    #expect(said.contains("p.yaml:4:41: error: ready_path needs port_base"), "\(said)")
    #expect(said.contains("p.yaml:7:58: error: ready_path is 'health'"), "\(said)")
  }
}
