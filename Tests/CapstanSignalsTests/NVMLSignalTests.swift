import CapstanTestKit
import Foundation
import Testing

@testable import CapstanCore
@testable import CapstanSignals

#if canImport(Glibc)
  import Glibc
#endif

/// The real loading code (dlopen, dlsym, the declared function types) driven through a stub
/// libnvidia-ml.so.1 that the test compiles from Fixtures/nvml-stub.c.
@Suite("nvml signal", .serialized)
struct NVMLSignalTests {
  let folder: URL
  let library: URL
  let gpus: URL

  init() async throws {
    folder = try scratchDirectory("nvml")
    library = folder.appendingPathComponent("libnvidia-ml.so.1")
    gpus = folder.appendingPathComponent("gpus")
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "Fixtures/nvml-stub.c")
    let compiler = Process()
    compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    compiler.arguments = [
      "clang", "-shared", "-fPIC", "-DGPUS_FILE=\"\(gpus.path)\"", "-o", library.path, source.path,
    ]
    try compiler.run()
    #expect(await eventually(timeout: 60) { !compiler.isRunning })
    #expect(compiler.terminationStatus == 0, "clang could not build the NVML stub")
  }

  func write(_ lines: String) throws { try Data(lines.utf8).write(to: gpus) }

  func signal(_ settings: NVMLSignalSettings) -> NVMLSignal {
    var settings = settings
    settings.library = settings.library ?? library.path
    return NVMLSignal(name: "gpu", settings: settings, baseDirectory: folder)
  }

  @Test("two GPUs: mean and max of utilization, one by index or UUID, memory used percent")
  func twoGPUs() async throws {
    try write("GPU-aaaa 30 10 40 ok\nGPU-bbbb 90 30 40 ok\n")
    #expect(try await signal(.init()).read(now: Date()) == 60)
    #expect(try await signal(.init(aggregate: .max)).read(now: Date()) == 90)
    #expect(try await signal(.init(devices: ["1"])).read(now: Date()) == 90)
    #expect(try await signal(.init(devices: ["GPU-aaaa"])).read(now: Date()) == 30)
    #expect(try await signal(.init(measure: .memoryUsedPercent)).read(now: Date()) == 50)
    #expect(try await signal(.init(measure: .memoryUsedPercent, aggregate: .max)).read(now: Date()) == 75)
  }

  @Test("a GPU lost mid-run makes the signal missing with the reason; the other GPU still reads")
  func lostMidRun() async throws {
    try write("GPU-aaaa 30 10 40 ok\nGPU-bbbb 90 30 40 ok\n")
    let all = signal(.init())
    #expect(try await all.read(now: Date()) == 60)
    try write("GPU-aaaa 30 10 40 ok\nGPU-bbbb 90 30 40 lost\n")
    await #expect(
      throws: SignalReadError(
        signal: "gpu", "GPU 1 is lost (GPU is lost): it fell off the bus or needs a reset")
    ) {
      try await all.read(now: Date())
    }
    #expect(try await signal(.init(devices: ["0"])).read(now: Date()) == 30)
  }

  @Test("MIG devices do not report utilization, and the message says what to use instead")
  func mig() async throws {
    try write("MIG-cccc 0 5 20 mig\n")
    await #expect {
      try await signal(.init()).read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.hasPrefix(
        "GPU 0 does not report utilization (MIG instances do not)") == true
    }
    #expect(try await signal(.init(measure: .memoryUsedPercent)).read(now: Date()) == 25)
  }

  @Test("no library at all, or no driver: the signal is missing with a message naming which")
  func absent() async throws {
    await #expect {
      try await signal(.init(library: folder.appendingPathComponent("missing.so").path)).read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.contains("could not be loaded") == true
    }
    try write("no-driver\n")
    await #expect {
      try await signal(.init()).read(now: Date())
    } throws: { error in
      (error as? SignalReadError)?.message.contains("the NVIDIA driver is not loaded") == true
    }
    try write("")
    await #expect(throws: SignalReadError(signal: "gpu", "the NVIDIA driver reports no GPU")) {
      try await signal(.init()).read(now: Date())
    }
  }

  @Test("nvml settings are validated at their position")
  func settings() throws {
    let base = "processes: {w: {scaling: {metric: g, target: 70%, min: 1, max: 2}}}\nsignals:\n"
    let policy = try PolicyLoader.load(
      yaml: base + "  g: {nvml: {devices: [0, GPU-aa], measure: memory_used_percent, aggregate: max}}\n",
      file: "p.yaml"
    ).policy
    #expect(
      policy.signals.first?.source
        == .nvml(.init(devices: ["0", "GPU-aa"], measure: .memoryUsedPercent, aggregate: .max)))
    #expect(
      try PolicyLoader.load(yaml: base + "  g: {nvml: {devices: all}}\n", file: "p.yaml").policy.signals
        .first?.source == .nvml(.init()))
    #expect {
      try PolicyLoader.load(yaml: base + "  g: {nvml: {devices: [first]}}\n", file: "p.yaml")
    } throws: { error in
      (error as? PolicyLoadError)?.errors.first?.description
        == "p.yaml:3:24: error: device 'first' is neither an index nor a UUID (GPU-... or MIG-...)"
    }
  }
}
