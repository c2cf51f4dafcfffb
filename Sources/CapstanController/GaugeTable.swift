import CoreMetrics
import Synchronization

/// Gauges kept as rows of a table: a family's series are its rendered label sets and their
/// values, side by side.
///
/// A fleet's gauges are most of its series (three replica counts and a signal value a process),
/// and swift-prometheus makes each series an object of its own, about a kilobyte with its
/// labels, a pre-rendered line and its place in the family: 40 MB at ten thousand processes.
/// A row here is its rendered labels and a number, about a tenth of that. The exposition is
/// the text format's, as swift-prometheus writes it.
final class GaugeTable: Sendable {
  private struct Family {
    var name: String
    /// Each series' labels as the exposition writes them, `process="a",state="ready"`.
    var labels: [String] = []
    /// nil once the series is destroyed.
    var values: [Double?] = []
    var row: [String: Int] = [:]
  }

  private struct Rows {
    var families: [Family] = []
    var family: [String: Int] = [:]
  }

  private let rows = Mutex(Rows())

  /// The handler for one series, made (at 0) the first time it is asked for.
  func handler(label: String, dimensions: [(String, String)]) -> any RecorderHandler {
    let labels = Self.render(dimensions)
    return rows.withLock { rows in
      let family: Int
      if let known = rows.family[label] {
        family = known
      } else {
        family = rows.families.count
        rows.families.append(Family(name: label))
        rows.family[label] = family
      }
      if let row = rows.families[family].row[labels] {
        return GaugeRow(table: self, family: family, row: row)
      }
      let row = rows.families[family].labels.count
      rows.families[family].labels.append(labels)
      rows.families[family].values.append(0)
      rows.families[family].row[labels] = row
      return GaugeRow(table: self, family: family, row: row)
    }
  }

  func set(family: Int, row: Int, to value: Double) {
    rows.withLock { rows in
      // A destroyed series stays gone: a handler kept past its destruction records nothing.
      if rows.families[family].values[row] != nil { rows.families[family].values[row] = value }
    }
  }

  func destroy(_ handler: any RecorderHandler) {
    guard let handler = handler as? GaugeRow, handler.table === self else { return }
    rows.withLock { rows in
      let labels = rows.families[handler.family].labels[handler.row]
      rows.families[handler.family].values[handler.row] = nil
      rows.families[handler.family].row[labels] = nil
    }
  }

  /// Every family: its `# TYPE` line, then one line a series, in the order they were made.
  func emit(into out: inout String) {
    rows.withLock { rows in
      for family in rows.families {
        out += "# TYPE \(family.name) gauge\n"
        for (labels, value) in zip(family.labels, family.values) {
          guard let value else { continue }
          out += family.name
          if !labels.isEmpty { out += "{\(labels)}" }
          out += " \(Self.format(value))\n"
        }
      }
    }
  }

  /// The text format's numbers: Go's float syntax, `NaN` and `±Inf` spelled as Prometheus
  /// spells them.
  static func format(_ value: Double) -> String {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
    return "\(value)"
  }

  /// `name="value"` pairs, the value escaped as the text format asks (`\\`, `\"`, `\n`).
  static func render(_ dimensions: [(String, String)]) -> String {
    var out = ""
    for (index, (name, value)) in dimensions.enumerated() {
      if index > 0 { out += "," }
      out += name
      out += "=\""
      for character in value.unicodeScalars {
        switch character {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(character)
        }
      }
      out += "\""
    }
    return out
  }
}

/// One series of a `GaugeTable`.
final class GaugeRow: RecorderHandler, Sendable {
  let table: GaugeTable
  let family: Int
  let row: Int

  init(table: GaugeTable, family: Int, row: Int) {
    self.table = table
    self.family = family
    self.row = row
  }

  func record(_ value: Int64) { table.set(family: family, row: row, to: Double(value)) }
  func record(_ value: Double) { table.set(family: family, row: row, to: value) }
}
