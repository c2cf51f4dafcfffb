import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A JSON document in the state directory, replaced atomically: written to a temporary file,
/// fsynced, renamed over the old one, and the directory fsynced, so a crash leaves either the old
/// state or the new one, never half of each.
public struct StateStore<Document: Codable>: Sendable {
  public let directory: URL
  public let name: String
  /// Whether each save waits for the disk (fsync). Without it a save is still atomic for a
  /// process that dies, but a machine that loses power may keep an older state: for a copy of
  /// a state kept durably elsewhere (the Kubernetes ConfigMap), where a fleet's megabyte of
  /// state would wait on the disk every tick for nothing.
  public let durable: Bool

  public init(directory: URL, name: String, durable: Bool = true) throws {
    self.directory = directory
    self.name = name
    self.durable = durable
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  public var url: URL { directory.appendingPathComponent(name) }

  public struct Failure: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) { self.description = description }
  }

  /// nil when there is no saved state yet.
  public func load() throws -> Document? {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return nil }
    guard !isDirectory.boolValue, let data = FileManager.default.contents(atPath: url.path) else {
      throw Failure(
        description:
          "\(url.path) is not a readable file: move it aside to start afresh, or fix its permissions")
    }
    do {
      let decoder = JSONDecoder()
      decoder.dateDecodingStrategy = .secondsSince1970
      return try decoder.decode(Document.self, from: data)
    } catch {
      throw Failure(
        description:
          "\(url.path) is not a state file Capstan can read (\(error)): move it aside to start afresh")
    }
  }

  public func save(_ document: Document) throws {
    try save(encoded: try Self.encode(document))
  }

  /// The document as `save` writes it: JSON with sorted keys and dates as seconds since 1970.
  public static func encode(_ document: Document) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.dateEncodingStrategy = .secondsSince1970
    return try encoder.encode(document)
  }

  /// Replaces the file with `data`, a document as `encode` gives it.
  public func save(encoded data: Data) throws {
    try AtomicFile.replace(url, with: data, durable: durable)
  }
}

/// A file replaced whole: written to a temporary file beside it, fsynced where `durable`,
/// renamed over the old one, and its folder fsynced, so a crash leaves the old file or the new
/// one, never half of each.
public enum AtomicFile {
  public struct Failure: Error, CustomStringConvertible {
    public var description: String
  }

  public static func replace(_ url: URL, with data: Data, durable: Bool) throws {
    let directory = url.deletingLastPathComponent()
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
    let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw Failure(
        description: "cannot write \(temporary.path): \(String(cString: strerror(errno)))")
    }
    let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    let synced = durable ? fsync(descriptor) : 0
    close(descriptor)
    guard written == data.count, synced == 0 else {
      unlink(temporary.path)
      throw Failure(
        description: "cannot write \(temporary.path): \(String(cString: strerror(errno)))")
    }
    guard rename(temporary.path, url.path) == 0 else {
      throw Failure(
        description: "cannot replace \(url.path): \(String(cString: strerror(errno)))")
    }
    let folder = durable ? open(directory.path, O_RDONLY | O_CLOEXEC) : -1
    if folder >= 0 {
      fsync(folder)
      close(folder)
    }
  }
}

/// Writes handed over are carried out in order on a thread of their own, the latest replacing
/// one not yet begun: for the state file when it is not the copy that outlives the controller
/// (on Kubernetes the ConfigMap is), so a tick does not wait on the disk for it.
public final class BackgroundStateWriter: @unchecked Sendable {
  private let save: @Sendable (Data) throws -> Void
  private let queue = DispatchQueue(label: "capstan.state-writer")
  private let lock = NSLock()
  private var pending: Data?
  private var draining = false
  private var failure: String?

  public init(save: @escaping @Sendable (Data) throws -> Void) { self.save = save }

  /// Queues `data`; a write queued earlier and not yet begun is dropped for it.
  public func write(_ data: Data) {
    let start = lock.withLock {
      pending = data
      defer { draining = true }
      return !draining
    }
    if start { queue.async { self.drain() } }
  }

  /// What the last write that failed said; nil once one succeeds.
  public var lastFailure: String? { lock.withLock { failure } }

  /// Returns once every write queued before it is on disk (or failed).
  public func flush() { queue.sync {} }

  private func drain() {
    while let data = lock.withLock({ () -> Data? in
      let next = pending
      pending = nil
      if next == nil { draining = false }
      return next
    }) {
      do {
        try save(data)
        lock.withLock { failure = nil }
      } catch {
        lock.withLock { failure = "\(error)" }
      }
    }
  }
}
