import CapstanCore
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// An append-only JSON Lines audit log. Each record is one `write(2)` on a descriptor opened with
/// `O_APPEND`, so records from a crash are whole or torn at the end, never interleaved; a torn
/// last line from an earlier crash is left as it is and the next record starts on a new line.
public final class AuditLogFile {
  public let path: String
  private var descriptor: Int32
  private let durable: Bool

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
    if Self.endsWithoutNewline(path) { try write("\n") }
  }

  deinit { close() }

  public func append(_ record: AuditRecord) throws {
    try write(record.jsonLine() + "\n")
    // A device that cannot be synced (EINVAL) has nothing more to flush; any other failure means
    // the record may not be on disk.
    if durable, fsync(descriptor) != 0, errno != EINVAL {
      throw OpenError(path: path, reason: "sync failed: \(String(cString: strerror(errno)))")
    }
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
