import CapstanCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A spool directory read as a queue: the number of entries, or the age of the oldest.
public struct DirectoryQueueSignal: SignalReader {
  public let name: String
  public let settings: DirectorySignalSettings
  public let directory: URL

  public init(name: String, settings: DirectorySignalSettings, baseDirectory: URL) {
    (self.name, self.settings) = (name, settings)
    directory = baseDirectory.resolving(settings.path)
  }

  public var timeout: TimeInterval { settings.timeout }

  public func read(now: Date) async throws -> Double {
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
    } catch {
      let exists = FileManager.default.fileExists(atPath: directory.path)
      throw SignalReadError(
        signal: name,
        exists
          ? "cannot list \(directory.path): \(error.localizedDescription)"
          : "\(directory.path) does not exist: create the spool directory or fix signals.\(name).directory.path"
      )
    }
    let entries = names.filter { entry in
      !entry.hasPrefix(".") && (settings.glob.map { fnmatch($0, entry, 0) == 0 } ?? true)
    }
    switch settings.measure {
    case .depth:
      return Double(entries.count)
    case .oldestAge:
      var oldest: Double?
      for entry in entries {
        var info = stat()
        // An entry taken by a worker between listing and stat is simply gone.
        guard stat(directory.appendingPathComponent(entry).path, &info) == 0 else { continue }
        let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        oldest = min(oldest ?? modified, modified)
      }
      return oldest.map { max(0, now.timeIntervalSince1970 - $0) } ?? 0
    }
  }
}
