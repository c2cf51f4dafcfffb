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
  public private(set) var lineNumber = 0
  private let file: UnsafeMutablePointer<FILE>
  private var buffer: [UInt8] = []
  private var start = 0
  private var atEnd = false
  private var separator = UInt8(ascii: "\n")
  private var sawFirstBlock = false
  private static let chunk = 1 << 16

  /// Opens the file; errors say the path and why.
  public init(path: String) throws(MetricsFileError) {
    self.path = path
    guard let file = fopen(path, "rb") else {
      throw MetricsFileError(
        file: path, line: 0, message: "cannot read the file: \(String(cString: strerror(errno)))")
    }
    self.file = file
  }

  deinit { fclose(file) }

  /// The next line's bytes without its end, or nil at the end of the file. The buffer it points
  /// into is reused by the next call.
  public func next<Result>(_ body: (ArraySlice<UInt8>) throws -> Result) throws -> Result? {
    while true {
      if let newline = nextSeparator() {
        var line = buffer[start..<newline]
        start = newline + 1
        return try deliver(&line, body)
      }
      if atEnd {
        guard start < buffer.count else { return nil }
        var line = buffer[start...]
        start = buffer.count
        return try deliver(&line, body)
      }
      guard buffer.count - start <= Self.maxLineBytes else { throw tooLong() }
      refill()
    }
  }

  /// Where the next line ends in the buffer, if it ends there: `memchr` compares many bytes at
  /// a time, where a loop over the slice compared one.
  private func nextSeparator() -> Int? {
    buffer.withUnsafeBufferPointer { bytes in
      guard let base = bytes.baseAddress, start < bytes.count,
        let found = memchr(base + start, Int32(separator), bytes.count - start)
      else { return nil }
      return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }
  }

  /// The next line as text, or nil at the end.
  public func nextLine() throws -> String? {
    try next { String(decoding: $0, as: UTF8.self) }
  }

  private func tooLong() -> MetricsFileError {
    MetricsFileError(
      file: path, line: lineNumber + 1,
      message: "a line longer than \(Self.maxLineBytes) bytes: is this a line-based text file?")
  }

  private func deliver<Result>(_ line: inout ArraySlice<UInt8>, _ body: (ArraySlice<UInt8>) throws -> Result)
    throws -> Result
  {
    guard line.count <= Self.maxLineBytes else { throw tooLong() }
    lineNumber += 1
    if separator == UInt8(ascii: "\n") && line.last == UInt8(ascii: "\r") { line = line.dropLast() }
    if lineNumber == 1 && line.starts(with: [0xEF, 0xBB, 0xBF]) { line = line.dropFirst(3) }
    return try body(line)
  }

  private func refill() {
    buffer.removeSubrange(0..<start)
    start = 0
    let kept = buffer.count
    buffer.append(contentsOf: repeatElement(0, count: Self.chunk))
    let read = buffer.withUnsafeMutableBufferPointer { pointer in
      fread(pointer.baseAddress.map { $0 + kept }, 1, Self.chunk, file)
    }
    buffer.removeLast(Self.chunk - read)
    if read < Self.chunk { atEnd = true }
    if !sawFirstBlock {
      sawFirstBlock = true
      if !buffer.contains(UInt8(ascii: "\n")) && buffer.contains(UInt8(ascii: "\r")) {
        separator = UInt8(ascii: "\r")
      }
    }
  }
}
