import CapstanCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// GPU utilization or memory from NVML. The library is opened with `dlopen` at the first read,
/// with the few functions used declared here (no header is needed to build), so the binary
/// starts and runs on machines with no GPU: there the signal is missing, with a message that
/// says which part is absent.
public struct NVMLSignal: SignalReader {
  public let name: String
  public let settings: NVMLSignalSettings
  private let library: NVMLLibrary

  public init(name: String, settings: NVMLSignalSettings, baseDirectory: URL) {
    (self.name, self.settings) = (name, settings)
    library = NVMLLibrary(
      path: settings.library.map { baseDirectory.resolving($0).path } ?? "libnvidia-ml.so.1")
  }

  public var timeout: TimeInterval { settings.timeout }

  public func read(now: Date) async throws -> Double {
    do {
      let values = try library.read(settings.measure, devices: settings.devices)
      switch settings.aggregate {
      case .mean: return values.reduce(0, +) / Double(values.count)
      case .max: return values.max() ?? 0
      }
    } catch let failure as NVMLLibrary.Failure {
      throw SignalReadError(signal: name, failure.message)
    }
  }
}

/// The NVML functions Capstan calls, bound once per library.
final class NVMLLibrary: @unchecked Sendable {
  typealias Return = Int32
  typealias Device = OpaquePointer?
  typealias InitFunction = @convention(c) () -> Return
  typealias ErrorStringFunction = @convention(c) (Return) -> UnsafePointer<CChar>?
  typealias CountFunction = @convention(c) (UnsafeMutablePointer<UInt32>) -> Return
  typealias HandleByIndexFunction = @convention(c) (UInt32, UnsafeMutablePointer<Device>) -> Return
  typealias HandleByUUIDFunction =
    @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<Device>) -> Return
  /// nvmlUtilization_t is { unsigned int gpu; unsigned int memory; }.
  typealias UtilizationFunction = @convention(c) (Device, UnsafeMutablePointer<UInt32>) -> Return
  /// nvmlMemory_t is { unsigned long long total; free; used; }.
  typealias MemoryFunction = @convention(c) (Device, UnsafeMutablePointer<UInt64>) -> Return

  struct Functions {
    var errorString: ErrorStringFunction
    var count: CountFunction
    var handleByIndex: HandleByIndexFunction
    var handleByUUID: HandleByUUIDFunction
    var utilization: UtilizationFunction
    var memory: MemoryFunction
  }

  struct Failure: Error {
    var message: String
  }

  // Return codes from nvml.h.
  static let success: Return = 0
  static let notSupported: Return = 3
  static let driverNotLoaded: Return = 9
  static let gpuIsLost: Return = 15

  let path: String
  private let lock = NSLock()
  private var functions: Functions?

  init(path: String) { self.path = path }

  /// One value per device, on the 0–100 scale.
  func read(_ measure: NVMLSignalSettings.Measure, devices: [String]?) throws -> [Double] {
    let nvml = try loaded()
    var handles: [(label: String, device: Device)] = []
    if let devices {
      for id in devices {
        var device: Device = nil
        let result = Int(id).map { nvml.handleByIndex(UInt32($0), &device) } ?? nvml.handleByUUID(id, &device)
        try check(result, nvml, "GPU \(id)")
        handles.append((id, device))
      }
    } else {
      var count: UInt32 = 0
      try check(nvml.count(&count), nvml, "counting GPUs")
      guard count > 0 else { throw Failure(message: "the NVIDIA driver reports no GPU") }
      for index in 0..<count {
        var device: Device = nil
        try check(nvml.handleByIndex(index, &device), nvml, "GPU \(index)")
        handles.append((String(index), device))
      }
    }
    return try handles.map { label, device in
      switch measure {
      case .utilization:
        var rates: (UInt32, UInt32) = (0, 0)
        let result = withUnsafeMutablePointer(to: &rates) {
          $0.withMemoryRebound(to: UInt32.self, capacity: 2) { nvml.utilization(device, $0) }
        }
        if result == Self.notSupported {
          throw Failure(
            message:
              "GPU \(label) does not report utilization (MIG instances do not): use measure: memory_used_percent, or read DCGM's metrics through a prometheus source"
          )
        }
        try check(result, nvml, "GPU \(label)")
        return Double(rates.0)
      case .memoryUsedPercent:
        var memory: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let result = withUnsafeMutablePointer(to: &memory) {
          $0.withMemoryRebound(to: UInt64.self, capacity: 3) { nvml.memory(device, $0) }
        }
        try check(result, nvml, "GPU \(label)")
        guard memory.0 > 0 else { throw Failure(message: "GPU \(label) reports no memory") }
        return Double(memory.2) / Double(memory.0) * 100
      }
    }
  }

  private func check(_ result: Return, _ nvml: Functions, _ what: String) throws {
    guard result != Self.success else { return }
    let text = nvml.errorString(result).map { String(cString: $0) } ?? "error \(result)"
    if result == Self.gpuIsLost {
      throw Failure(message: "\(what) is lost (\(text)): it fell off the bus or needs a reset")
    }
    throw Failure(message: "\(what): NVML says \(text)")
  }

  /// Opens the library and initializes NVML on first use; a failure is tried again at the next
  /// read, since a driver can be loaded after Capstan starts.
  private func loaded() throws -> Functions {
    try lock.withLock {
      if let functions { return functions }
      guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
        let reason = dlerror().map { String(cString: $0) } ?? "unknown"
        throw Failure(
          message:
            "the NVIDIA management library \(path) could not be loaded (\(reason)): is the NVIDIA driver installed? Without a GPU, this signal stays missing"
        )
      }
      func symbol<T>(_ name: String, as type: T.Type) throws -> T {
        guard let pointer = dlsym(handle, name) else {
          throw Failure(
            message: "\(path) has no \(name): the driver is too old for Capstan (it needs NVML 10 or later)")
        }
        return unsafeBitCast(pointer, to: type)
      }
      let initialize = try symbol("nvmlInit_v2", as: InitFunction.self)
      let functions = Functions(
        errorString: try symbol("nvmlErrorString", as: ErrorStringFunction.self),
        count: try symbol("nvmlDeviceGetCount_v2", as: CountFunction.self),
        handleByIndex: try symbol("nvmlDeviceGetHandleByIndex_v2", as: HandleByIndexFunction.self),
        handleByUUID: try symbol("nvmlDeviceGetHandleByUUID", as: HandleByUUIDFunction.self),
        utilization: try symbol("nvmlDeviceGetUtilizationRates", as: UtilizationFunction.self),
        memory: try symbol("nvmlDeviceGetMemoryInfo", as: MemoryFunction.self))
      let result = initialize()
      guard result == Self.success else {
        if result == Self.driverNotLoaded {
          throw Failure(
            message:
              "\(path) is installed but the NVIDIA driver is not loaded (no GPU, or the kernel module is missing)"
          )
        }
        let text = functions.errorString(result).map { String(cString: $0) } ?? "error \(result)"
        throw Failure(message: "NVML would not start: \(text)")
      }
      self.functions = functions
      return functions
    }
  }
}
