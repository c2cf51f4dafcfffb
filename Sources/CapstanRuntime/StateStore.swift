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
    let temporary = directory.appendingPathComponent(".\(name).\(getpid()).tmp")
    let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw Failure(description: "cannot write \(temporary.path): \(String(cString: strerror(errno)))")
    }
    let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    let synced = durable ? fsync(descriptor) : 0
    close(descriptor)
    guard written == data.count, synced == 0 else {
      unlink(temporary.path)
      throw Failure(description: "cannot write \(temporary.path): \(String(cString: strerror(errno)))")
    }
    guard rename(temporary.path, url.path) == 0 else {
      throw Failure(description: "cannot replace \(url.path): \(String(cString: strerror(errno)))")
    }
    let folder = durable ? open(directory.path, O_RDONLY | O_CLOEXEC) : -1
    if folder >= 0 {
      fsync(folder)
      close(folder)
    }
  }
}
