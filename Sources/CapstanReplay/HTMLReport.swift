import CapstanCore
import Foundation

/// One self-contained HTML file: per process, on one time axis, the replicas of each run, the
/// driving signal against its target, the budget's spend against the day's budget, the binding
/// ceiling, and a marker for every scale action, blocked decision and budget step, its record
/// on hover; then the summary tables. Inline SVG and a few lines of script: it opens with no
/// network, and a month draws as fast as a day, because series are drawn from buckets.
public enum HTMLReport {
  public struct Table: Sendable {
    public var caption: String
    public var header: [String]
    public var rows: [[String]]

    public init(caption: String, header: [String], rows: [[String]]) {
      self.caption = caption
      self.header = header
      self.rows = rows
    }
  }

  static let width = 1100.0
  static let left = 64.0
  static let right = 16.0
  static let chartHeight = 150.0
  static let colors = ["#1f6feb", "#8250df", "#bf8700", "#1a7f37"]

  public static func render(
    _ recorder: ReportRecorder, title: String, subtitle: String, tables: [Table]
  ) -> String {
    let start = recorder.start ?? 0
    let end = max(recorder.end ?? 1, start + 1)
    var html = """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
      <style>
      body{font:14px system-ui,sans-serif;margin:24px;color:#1f2328}
      h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 4px}
      .sub{color:#656d76;margin:0 0 12px}.note{color:#656d76;font-size:12px}
      svg{display:block}svg text{font:11px system-ui,sans-serif;fill:#656d76}
      .legend span{margin-right:14px;cursor:pointer;user-select:none}.legend span.off{opacity:.35}
      .legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
      table{border-collapse:collapse;margin:8px 0 16px}td,th{border-bottom:1px solid #d0d7de;padding:4px 10px;text-align:right}
      td:first-child,th:first-child{text-align:left}caption{text-align:left;font-weight:600;padding:6px 0}
      </style></head><body>
      <h1>\(escape(title))</h1><p class="sub">\(escape(subtitle))</p>

      """
    for target in recorder.policy.targets {
      guard let drawing = recorder.processes[target.name] else { continue }
      html += panel(target, drawing, recorder: recorder, start: start, end: end)
    }
    for table in tables { html += render(table) }
    html += """
      <pre id="drawn" hidden></pre>
      <script>
      window.addEventListener("error", function (e) {
        document.documentElement.dataset.errors = (document.documentElement.dataset.errors || "") + e.message + ";";
      });
      (function () {
        var drawn = {};
        document.querySelectorAll("[data-marker]").forEach(function (m) {
          var p = m.closest("[data-process]").dataset.process, k = m.dataset.marker;
          drawn[p] = drawn[p] || {};
          drawn[p][k] = (drawn[p][k] || 0) + 1;
        });
        document.getElementById("drawn").textContent = JSON.stringify(drawn);
        document.querySelectorAll(".legend span").forEach(function (item) {
          item.addEventListener("click", function () {
            var panel = item.closest("[data-process]"), off = item.classList.toggle("off");
            panel.querySelectorAll('[data-series="' + item.dataset.series + '"]').forEach(function (s) {
              s.style.display = off ? "none" : "";
            });
          });
        });
      })();
      </script>
      </body></html>

      """
    return html
  }

  // MARK: Panels

  private static func panel(
    _ target: ScalingTarget, _ drawing: ReportRecorder.ProcessDrawing, recorder: ReportRecorder,
    start: Double,
    end: Double
  ) -> String {
    let ceiling = StaticCeiling.binding(for: target, in: recorder.policy)
    var out = "<section data-process=\"\(escape(target.name))\"><h2>\(escape(target.name))</h2>\n"
    out +=
      "<p class=\"sub\">min \(target.min), max \(target.max); ceiling \(ceiling.replicas): \(escape(ceiling.explanation))</p>\n"

    // Replicas: each run, the recording's, the ceiling, and the markers.
    var lines: [(name: String, series: DrawnSeries, color: String, dashed: Bool)] = []
    for (index, run) in recorder.runs.enumerated() {
      if let series = drawing.replicas[run] {
        lines.append(("replicas: \(run)", series, colors[index % colors.count], false))
      }
    }
    if let recorded = drawing.recorded { lines.append(("replicas: recorded", recorded, "#8c959f", true)) }
    var top = max(lines.map(\.series.highest).max() ?? 1, Double(min(ceiling.replicas, target.max)), 1)
    top = (top * 1.15).rounded(.up)
    let markers = drawing.markers.filter {
      switch $0.kind {
      case .scaleUp, .scaleDown, .blocked, .externalChange, .warning, .predictiveFloor: true
      default: false
      }
    }
    out += chart(
      "replicas", lines: lines, top: top, start: start, end: end,
      level: (Double(ceiling.replicas), "ceiling \(ceiling.replicas)"), markers: markers)

    // The driving signal against its target.
    if let signal = drawing.signal, let name = ReportRecorder.drivingSignal(target) {
      var signalLines = [(name: name, series: signal, color: "#0969da", dashed: false)]
      if let goal = drawing.target { signalLines.append(("target", goal, "#cf222e", true)) }
      let high = max(signalLines.map(\.series.highest).max() ?? 1, 1) * 1.15
      out += chart(
        name, lines: signalLines, top: high, start: start, end: end, level: nil,
        markers: drawing.markers.filter { $0.kind == .signalMissing || $0.kind == .signalRestored })
    }

    // A simulation's load: arrivals, each run's queue, and each run's SLO latency against its bound.
    if let arrivals = drawing.arrivals {
      out += chart(
        "arrivals (requests a second)", lines: [("arrivals", arrivals, "#57606a", false)],
        top: max(arrivals.highest, 1) * 1.15, start: start, end: end, level: nil, markers: [])
    }
    let perRun = { (series: [String: DrawnSeries], label: String) in
      recorder.runs.enumerated().compactMap { index, run in
        series[run].map {
          (name: "\(label): \(run)", series: $0, color: colors[index % colors.count], dashed: false)
        }
      }
    }
    let queues = perRun(drawing.queue, "queue")
    if !queues.isEmpty {
      out += chart(
        "requests waiting", lines: queues, top: max(queues.map(\.series.highest).max() ?? 1, 1) * 1.15,
        start: start, end: end, level: nil, markers: [])
    }
    let latencies = perRun(drawing.latency, "p95")
    if let slo = drawing.slo, !latencies.isEmpty {
      let high = max(latencies.map(\.series.highest).max() ?? 0, slo.bound) * 1.15
      out += chart(
        "\(slo.name) p95 over the last minute (s)", lines: latencies, top: high, start: start, end: end,
        level: (slo.bound, "SLO bound \(Ceilings.format(slo.bound))s"), markers: [])
    }

    // The budget's spend against the day's budget, with its alerts, freezes and resets.
    if let spend = drawing.spend, let budget = target.budget {
      let high = max(spend.highest, budget.dailyBudgetUSD) * 1.15
      out += chart(
        "spend today (USD)", lines: [("spend", spend, "#bf8700", false)], top: high, start: start, end: end,
        level: (budget.dailyBudgetUSD, "daily budget $\(Ceilings.format(budget.dailyBudgetUSD))"),
        markers: drawing.markers.filter { [.budgetAlert, .budgetFreeze, .budgetReset].contains($0.kind) })
    }
    if drawing.markersLeftOut > 0 {
      out +=
        "<p class=\"note\">\(drawing.markersLeftOut) more records than the \(ReportRecorder.markerLimit) drawn; the audit log has them all.</p>\n"
    }
    return out + "</section>\n"
  }

  private static func chart(
    _ title: String, lines: [(name: String, series: DrawnSeries, color: String, dashed: Bool)], top: Double,
    start: Double, end: Double, level: (value: Double, label: String)?, markers: [ReportRecorder.Marker]
  ) -> String {
    let plot = width - left - right
    let height = chartHeight
    func x(_ time: Double) -> Double { left + (time - start) / (end - start) * plot }
    func y(_ value: Double) -> Double { 8 + (1 - min(max(value / top, 0), 1)) * (height - 24) }
    var svg = "<div class=\"legend\">"
    for line in lines {
      svg +=
        "<span data-series=\"\(escape(line.name))\"><i style=\"background:\(line.color)\"></i>\(escape(line.name))</span>"
    }
    svg +=
      "</div>\n<svg viewBox=\"0 0 \(fmt(width)) \(fmt(height + 16))\" width=\"\(fmt(width))\" role=\"img\" aria-label=\"\(escape(title))\">\n"
    // Axes: the value at the top and the bottom, and times along the bottom.
    svg +=
      "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(top) + 4))\" text-anchor=\"end\">\(Ceilings.format(top))</text>"
    svg += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(0) + 4))\" text-anchor=\"end\">0</text>"
    svg +=
      "<line x1=\"\(fmt(left))\" x2=\"\(fmt(width - right))\" y1=\"\(fmt(y(0)))\" y2=\"\(fmt(y(0)))\" stroke=\"#d0d7de\"/>\n"
    for tick in timeTicks(start, end) {
      svg +=
        "<line x1=\"\(fmt(x(tick)))\" x2=\"\(fmt(x(tick)))\" y1=\"8\" y2=\"\(fmt(y(0)))\" stroke=\"#eaeef2\"/><text x=\"\(fmt(x(tick)))\" y=\"\(fmt(height + 8))\" text-anchor=\"middle\">\(timeLabel(tick))</text>"
    }
    svg += "<text x=\"\(fmt(left + 4))\" y=\"18\">\(escape(title))</text>\n"
    if let level {
      svg +=
        "<line x1=\"\(fmt(left))\" x2=\"\(fmt(width - right))\" y1=\"\(fmt(y(level.value)))\" y2=\"\(fmt(y(level.value)))\" stroke=\"#cf222e\" stroke-dasharray=\"2 3\"><title>\(escape(level.label))</title></line><text x=\"\(fmt(width - right - 4))\" y=\"\(fmt(y(level.value) - 3))\" text-anchor=\"end\">\(escape(level.label))</text>\n"
    }
    for line in lines {
      // Where a bucket holds more than one value, its range is a band and its last value a step.
      var band = ""
      var path = ""
      for (index, bucket) in line.series.buckets.enumerated() {
        let next = index + 1 < line.series.buckets.count ? line.series.buckets[index + 1].start : end
        let x0 = x(bucket.start)
        let x1 = x(min(next, bucket.start + line.series.width))
        path += "\(path.isEmpty ? "M" : "L")\(fmt(x0)) \(fmt(y(bucket.last)))H\(fmt(x1))"
        if bucket.high > bucket.low {
          band += "M\(fmt(x0)) \(fmt(y(bucket.high)))H\(fmt(x1))V\(fmt(y(bucket.low)))H\(fmt(x0))Z"
        }
      }
      let name = escape(line.name)
      if !band.isEmpty {
        svg += "<path data-series=\"\(name)\" d=\"\(band)\" fill=\"\(line.color)\" fill-opacity=\".15\"/>\n"
      }
      svg +=
        "<path data-series=\"\(name)\" d=\"\(path)\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.5\"\(line.dashed ? " stroke-dasharray=\"5 3\"" : "")/>\n"
    }
    for marker in markers {
      let (shape, color, row): (String, String, Double) =
        switch marker.kind {
        case .scaleUp: ("M-4 3L0-4L4 3Z", "#1a7f37", 0)
        case .scaleDown: ("M-4-3L0 4L4-3Z", "#0969da", 0)
        case .blocked: ("M-3-3L3 3M3-3L-3 3", "#cf222e", 1)
        case .budgetAlert, .budgetFreeze, .budgetReset: ("M-3-3H3V3H-3Z", "#bf8700", 0)
        case .signalMissing: ("M-3-3H3V3H-3Z", "#cf222e", 0)
        case .signalRestored: ("M-3-3H3V3H-3Z", "#1a7f37", 0)
        default: ("M0-4L4 0L0 4L-4 0Z", "#8250df", 1)
        }
      // Scale actions sit on the count they set; blocked records and the rest along the top.
      let yValue =
        marker.kind == .scaleUp || marker.kind == .scaleDown ? y(Double(marker.to ?? 0)) : 12 + row * 8
      svg +=
        "<path data-marker=\"\(marker.kind.rawValue)\" transform=\"translate(\(fmt(x(marker.time))) \(fmt(yValue)))\" d=\"\(shape)\" fill=\"\(color)\" stroke=\"\(color)\" stroke-width=\"1.5\"><title>\(escape(marker.text))</title></path>\n"
    }
    return svg + "</svg>\n"
  }

  private static func render(_ table: Table) -> String {
    var out = "<table><caption>\(escape(table.caption))</caption><tr>"
    out += table.header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
    for row in table.rows { out += "<tr>" + row.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n" }
    return out + "</table>\n"
  }

  // MARK: Time

  /// At most about ten labelled times, on round steps from a minute to a week.
  static func timeTicks(_ start: Double, _ end: Double) -> [Double] {
    let steps: [Double] = [
      60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 2 * 86_400, 7 * 86_400,
    ]
    let span = end - start
    let step = steps.first { span / $0 <= 10 } ?? (span / 10).rounded(.up)
    var ticks: [Double] = []
    var tick = (start / step).rounded(.up) * step
    while tick <= end, ticks.count < 12 {
      ticks.append(tick)
      tick += step
    }
    return ticks
  }

  static func timeLabel(_ seconds: Double) -> String {
    let text = RFC3339.string(from: Date(timeIntervalSince1970: seconds))
    // 2023-11-16T08:57:45Z → 11-16 08:57
    let parts = text.dropFirst(5).prefix(11)
    return parts.replacingOccurrences(of: "T", with: " ")
  }

  /// A coordinate to a tenth of a pixel, in as few characters as that takes.
  static func fmt(_ value: Double) -> String {
    let tenth = (value * 10).rounded() / 10
    return tenth == tenth.rounded() && abs(tenth) < 1e9 ? String(Int(tenth)) : String(tenth)
  }

  static func escape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
      switch character {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      default: out.append(character)
      }
    }
    return out
  }
}
