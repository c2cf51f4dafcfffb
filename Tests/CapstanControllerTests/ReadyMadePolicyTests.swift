import CapstanController
import CapstanCore
import Foundation
import Testing

/// The policies in policies/ are documentation users copy: each must validate without a
/// warning, and the live ones must be runnable as written.
@Suite("Ready-made policies")
struct ReadyMadePolicyTests {
  static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("policies")

  static let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
    $0.hasSuffix(".yaml")
  }.sorted()

  @Test("every policy validates with no warnings", arguments: files)
  func validates(file: String) throws {
    let text = try String(contentsOf: Self.folder.appendingPathComponent(file), encoding: .utf8)
    let loaded = try PolicyLoader.load(yaml: text, file: file)
    #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
  }

  @Test(
    "the live policies can run as written, with the ceilings their comments promise",
    arguments: [
      ("vllm.yaml", "vllm", ScaleReason.costCeiling, 6),
      ("vllm-slo.yaml", "vllm", .costCeiling, 6),
      ("litellm-budget.yaml", "agent-worker", .rateLimitCeiling, 26),
    ])
  func runnable(file: String, process: String, ceiling: ScaleReason, replicas: Int) throws {
    let text = try String(contentsOf: Self.folder.appendingPathComponent(file), encoding: .utf8)
    let policy = try PolicyLoader.load(yaml: text, file: file).policy
    #expect(Controller.runProblems(policy, file: file).isEmpty)
    let target = try #require(policy.target(named: process))
    let binding = StaticCeiling.binding(for: target, in: policy)
    #expect(binding.reason == ceiling && binding.replicas == replicas)
  }

  @Test("the folder holds the replay example and the live policies")
  func present() {
    #expect(
      Set(Self.files).isSuperset(of: [
        "llm-serving.yaml", "vllm.yaml", "vllm-slo.yaml", "litellm-budget.yaml", "redis-queue-workers.yaml",
      ]))
  }
}
