import CapstanCore
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// An append-only JSON Lines audit log. A batch of records (a tick's) is one `write(2)` on a
/// descriptor opened with `O_APPEND`, so records are never interleaved. A write that fails part
/// way (a full disk) is cut back to the last whole record, so the file holds only whole records
/// of what was written whole; a torn last line from a crash is left as it is and the next record
/// starts on a new line.
public final class AuditLogFile {
  public let path: String
  private var descriptor: Int32
  private let durable: Bool
  /// A failed write left a torn line that could not be cut off: the next write starts a line.
  private var needsNewline = false

  public struct OpenError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
  }

  /// The path that means standard output, for a container whose logs are collected from there.
  public static let standardOutput = "-"

  /// - Parameter durable: `fsync` after every record, for a live controller whose log must
  ///   survive a power loss. Replay does not need it.
  public init(path: String, durable: Bool = false) throws {
    self.path = path
    if path == Self.standardOutput {
      // A pipe or a terminal cannot be synced; each record is still one write(2).
      self.durable = false
      descriptor = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0)
      guard descriptor >= 0 else {
        throw OpenError(path: "standard output", reason: String(cString: strerror(errno)))
      }
      return
    }
    self.durable = durable
    descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw OpenError(path: path, reason: String(cString: strerror(errno))) }
    needsNewline = Self.endsWithoutNewline(path)
  }

  deinit { close() }

  public func append(_ record: AuditRecord) throws { try append(contentsOf: [record]) }

  /// Appends the records in one write, all or none: on a failed write or sync, the file is cut
  /// back to where it ended before, so no record stays of what the caller then does not do.
  public func append(contentsOf records: [AuditRecord]) throws {
    guard !records.isEmpty else { return }
    var text = needsNewline ? "\n" : ""
    for record in records { text += record.jsonLine() + "\n" }
    let before = size()
    do {
      try write(text)
      // A device that cannot be synced (EINVAL) has nothing more to flush; any other failure
      // means the records may not be on disk.
      if durable, fsync(descriptor) != 0, errno != EINVAL {
        throw OpenError(path: path, reason: "sync failed: \(String(cString: strerror(errno)))")
      }
      needsNewline = false
    } catch {
      // Cut back to the last whole record; where that cannot be done (a pipe, a failing
      // device), the next batch starts on a line of its own.
      if let before, ftruncate(descriptor, before) == 0 {
        needsNewline = false
      } else {
        needsNewline = true
      }
      throw error
    }
  }

  /// The file's size, where it is a regular file.
  private func size() -> off_t? {
    var status = stat()
    guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
    return status.st_size
  }

  public func close() {
    if descriptor >= 0 {
      _ = Glibc.close(descriptor)
      descriptor = -1
    }
  }

  private func write(_ text: String) throws {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
      let written = bytes.withUnsafeMutableBytes { buffer in
        // Never empty here (offset < count), so the buffer has an address.
        guard let base = buffer.baseAddress else { return -1 }
        return Glibc.write(descriptor, base + offset, buffer.count - offset)
      }
      if written < 0 {
        if errno == EINTR { continue }
        throw OpenError(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
      }
      offset += written
    }
    bytes.removeAll()
  }

  private static func endsWithoutNewline(_ path: String) -> Bool {
    guard let handle = FileHandle(forReadingAtPath: path) else { return false }
    defer { try? handle.close() }
    guard let size = try? handle.seekToEnd(), size > 0 else { return false }
    try? handle.seek(toOffset: size - 1)
    return (try? handle.read(upToCount: 1)) != Data("\n".utf8)
  }
}
