/// A position in a policy file, 1-based as editors show it.
public struct FileLocation: Hashable, Sendable, Comparable, CustomStringConvertible {
  public var file: String
  public var line: Int
  public var column: Int

  public init(file: String, line: Int, column: Int) {
    self.file = file
    self.line = line
    self.column = column
  }

  public var description: String { "\(file):\(line):\(column)" }

  public static func < (a: FileLocation, b: FileLocation) -> Bool {
    (a.file, a.line, a.column) < (b.file, b.line, b.column)
  }
}

/// One problem found in a policy file, with where it is and, in the message, what to do.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
  public enum Severity: String, Sendable { case error, warning }

  public var severity: Severity
  public var location: FileLocation
  public var message: String

  public init(_ severity: Severity, at location: FileLocation, _ message: String) {
    self.severity = severity
    self.location = location
    self.message = message
  }

  /// The compiler-style line editors and CI annotate: `FILE:LINE:COLUMN: error: MESSAGE`.
  public var description: String { "\(location): \(severity.rawValue): \(message)" }
}

/// Thrown when a policy file has at least one error; carries every diagnostic found, in file order.
public struct PolicyLoadError: Error, Sendable, CustomStringConvertible {
  public var diagnostics: [Diagnostic]

  public init(diagnostics: [Diagnostic]) {
    self.diagnostics = diagnostics.sorted { ($0.location, $0.message) < ($1.location, $1.message) }
  }

  public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }

  public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Collects diagnostics while one file is decoded and validated, so that every problem is
/// reported at once instead of stopping at the first.
final class DiagnosticSink {
  let file: String
  private(set) var diagnostics: [Diagnostic] = []

  init(file: String) { self.file = file }

  func error(_ location: FileLocation, _ message: String) {
    diagnostics.append(Diagnostic(.error, at: location, message))
  }

  func warning(_ location: FileLocation, _ message: String) {
    diagnostics.append(Diagnostic(.warning, at: location, message))
  }

  var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
}

/// The closest candidate to a misspelt word, for "did you mean" hints; nil when nothing is close.
func closestMatch(to word: String, in candidates: some Sequence<String>) -> String? {
  var best: (name: String, distance: Int)?
  for candidate in candidates {
    let distance = editDistance(word.lowercased(), candidate.lowercased())
    if distance <= max(2, candidate.count / 3), distance < (best?.distance ?? .max) {
      best = (candidate, distance)
    }
  }
  return best?.name
}

func editDistance(_ a: String, _ b: String) -> Int {
  let a = Array(a)
  let b = Array(b)
  if a.isEmpty { return b.count }
  if b.isEmpty { return a.count }
  var previous = Array(0...b.count)
  var current = [Int](repeating: 0, count: b.count + 1)
  for i in 1...a.count {
    current[0] = i
    for j in 1...b.count {
      let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
      current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
    }
    swap(&previous, &current)
  }
  return previous[b.count]
}
