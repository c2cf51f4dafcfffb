import Foundation
import Testing

@testable import CapstanCore

@Suite("Audit records")
struct AuditRecordTests {
  @Test("one JSON line with the documented fields, null for a missing signal")
  func jsonLine() {
    let event = AuditEvent(
      time: Date(timeIntervalSince1970: 1_700_092_800), process: "inference", kind: .blocked, from: 4, to: 6,
      reason: .budgetFrozen, detail: "wanted 6; the daily budget is frozen",
      signals: [("gpu_utilization", 91.5), ("p95_latency", nil)],
      budget: BudgetSnapshot(spentUSD: 1950.5, limitUSD: 2000, state: .frozen), costPerHourUSD: 16.4)
    #expect(
      AuditRecord(event, mode: .replay).jsonLine()
        == #"{"budget":{"limit_usd":2000,"spent_usd":1950.5,"state":"frozen"},"cost_per_hour_usd":16.4,"detail":"wanted 6; the daily budget is frozen","event":"blocked","from":4,"mode":"replay","process":"inference","reason":"budget_frozen","signals":{"gpu_utilization":91.5,"p95_latency":null},"time":"2023-11-16T00:00:00Z","to":6}"#
    )
  }

  @Test("RFC 3339 in UTC, milliseconds only when present")
  func times() {
    #expect(RFC3339.string(from: Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
    #expect(RFC3339.string(from: Date(timeIntervalSince1970: 1_700_000_000.25)) == "2023-11-14T22:13:20.250Z")
  }
}
