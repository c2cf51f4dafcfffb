#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reads a file line by line through a fixed buffer, so an input of any length is read in the
/// same memory. Lines end at `\n` (a `\r` before it goes), or at `\r` in a file whose first
/// block has no `\n` (old Mac line ends); a byte-order mark at the start goes.
public final class LineReader {
  /// The longest line read; a longer one is an error (a file that is not line-based, or one
  /// line without end).
  public static let maxLineBytes = 1 << 20

  public let path: String
  /// The number of the line `next()` returned last, from 1.
  public var lineNumber: Int { lines.lineNumber }
  private let file: UnsafeMutablePointer<FILE>
  /// The bytes an in-memory reader reads, which it owns.
  private let contents: UnsafeMutableRawBufferPointer?
  /// Everything that changes as lines are read, in one value, so a line costs one exclusive
  /// access check rather than one per field.
  private var lines: LineBuffer

  /// Opens the file; errors say the path and why.
  public init(path: String) throws(MetricsFileError) {
    self.path = path
    guard let file = fopen(path, "rb") else {
      throw MetricsFileError(
        file: path, line: 0, message: "cannot read the file: \(String(cString: strerror(errno)))")
    }
    self.file = file
    contents = nil
    lines = LineBuffer()
  }

  /// Reads `text` as if it were the file `name`, by the same code: the text parsers and the
  /// streaming reader share one path (`fmemopen`).
  public init(text: String, name: String) throws(MetricsFileError) {
    path = name
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, text.utf8.count), alignment: 1)
    _ = bytes.initializeMemory(as: UInt8.self, from: text.utf8)
    guard let file = fmemopen(bytes.baseAddress, text.utf8.count, "rb") else {
      bytes.deallocate()
      throw MetricsFileError(
        file: name, line: 0, message: "cannot read the text: \(String(cString: strerror(errno)))")
    }
    self.file = file
    contents = bytes
    lines = LineBuffer()
  }

  deinit {
    fclose(file)
    contents?.deallocate()
    lines.storage.deallocate()
  }

  /// Hands the next line's bytes, without its end, and its number to `body`; nil at the end of
  /// the file. The bytes are the reader's own and valid only inside `body`.
  public func next<Result>(_ body: (_ line: UnsafeBufferPointer<UInt8>, _ number: Int) throws -> Result)
    throws -> Result?
  {
    guard let (line, number) = try lines.next(from: file, path: path) else { return nil }
    return try body(line, number)
  }

  /// The next line as text, or nil at the end.
  public func nextLine() throws -> String? {
    try next { line, _ in String(decoding: line, as: UTF8.self) }
  }
}

/// A line reader's buffer and place in it. The bytes read and not yet handed out lie at
/// `storage[start..<end]`. The storage is plain memory the reader owns (it frees it), not an
/// array: handing out a line then takes no reference count and no uniqueness check.
private struct LineBuffer {
  static let chunk = 1 << 16

  var storage = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: chunk)
  var start = 0
  var end = 0
  var atEnd = false
  var separator = UInt8(ascii: "\n")
  var sawFirstBlock = false
  var lineNumber = 0

  /// The next line, pointing into the storage until the next call, and its number; nil at the
  /// end.
  mutating func next(from file: UnsafeMutablePointer<FILE>, path: String) throws(MetricsFileError)
    -> (line: UnsafeBufferPointer<UInt8>, number: Int)?
  {
    // Bounded: each pass either returns or reads another chunk, and the file ends.
    while true {
      if let newline = nextSeparator() {
        let line = UnsafeBufferPointer(rebasing: storage[start..<newline])
        start = newline + 1
        return (try deliver(line, path: path), lineNumber)
      }
      if atEnd {
        guard start < end else { return nil }
        let line = UnsafeBufferPointer(rebasing: storage[start..<end])
        start = end
        return (try deliver(line, path: path), lineNumber)
      }
      guard end - start <= LineReader.maxLineBytes else { throw tooLong(path) }
      refill(from: file)
    }
  }

  /// Where the next line ends, if it ends within what has been read: `memchr` compares many
  /// bytes at a time.
  private func nextSeparator() -> Int? {
    guard start < end, let base = storage.baseAddress,
      let found = memchr(base + start, Int32(separator), end - start)
    else { return nil }
    return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
  }

  private mutating func deliver(_ line: UnsafeBufferPointer<UInt8>, path: String) throws(MetricsFileError)
    -> UnsafeBufferPointer<UInt8>
  {
    guard line.count <= LineReader.maxLineBytes else { throw tooLong(path) }
    lineNumber += 1
    var line = line[...]
    if separator == UInt8(ascii: "\n") && line.last == UInt8(ascii: "\r") { line = line.dropLast() }
    if lineNumber == 1 && line.starts(with: [0xEF, 0xBB, 0xBF]) { line = line.dropFirst(3) }
    return UnsafeBufferPointer(rebasing: line)
  }

  private func tooLong(_ path: String) -> MetricsFileError {
    MetricsFileError(
      file: path, line: lineNumber + 1,
      message: "a line longer than \(LineReader.maxLineBytes) bytes: is this a line-based text file?")
  }

  /// Moves what is left to the front and reads the next chunk after it, growing the storage
  /// only while a line is longer than what it holds (up to the longest line allowed).
  private mutating func refill(from file: UnsafeMutablePointer<FILE>) {
    let kept = end - start
    if let base = storage.baseAddress, start > 0 {
      memmove(base, base + start, kept)
    }
    start = 0
    end = kept
    if storage.count - end < Self.chunk {
      let larger = UnsafeMutableBufferPointer<UInt8>.allocate(
        capacity: max(storage.count * 2, end + Self.chunk))
      _ = larger.initialize(fromContentsOf: storage[..<end])
      storage.deallocate()
      storage = larger
    }
    let read = fread(storage.baseAddress.map { $0 + end }, 1, Self.chunk, file)
    end += read
    if read < Self.chunk { atEnd = true }
    if !sawFirstBlock {
      sawFirstBlock = true
      let block = storage[..<end]
      if !block.contains(UInt8(ascii: "\n")) && block.contains(UInt8(ascii: "\r")) {
        separator = UInt8(ascii: "\r")
      }
    }
  }
}
