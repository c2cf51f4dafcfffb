import CoreMetrics
import Prometheus

/// Capstan's metrics in several Prometheus registries, merged family by family when scraped.
///
/// swift-prometheus's registry copies a metric family's series each time one is added to it,
/// so a family of N series costs O(N²) to build: in one registry, the series of 10,000
/// processes take minutes. Spread by their label values over `shards` registries, each family
/// is built in N²/shards, and `emit` gives one exposition in which each family's lines stand
/// together, as the text format requires. Gauges, most of a fleet's series, are kept apart in a
/// `GaugeTable`, a tenth of the memory a series.
public final class ShardedPrometheusMetrics: MetricsFactory, Sendable {
  public let registries: [PrometheusCollectorRegistry]
  private let factories: [PrometheusMetricsFactory]
  private let gauges = GaugeTable()

  public init(shards: Int = 64) {
    registries = (0..<max(1, shards)).map { _ in PrometheusCollectorRegistry() }
    factories = registries.map { PrometheusMetricsFactory(registry: $0) }
  }

  /// The same series always lands in the same shard: FNV-1a over its label values.
  private func factory(_ dimensions: [(String, String)]) -> PrometheusMetricsFactory {
    guard factories.count > 1, !dimensions.isEmpty else { return factories[0] }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for (_, value) in dimensions {
      for byte in value.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
      }
    }
    return factories[Int(hash % UInt64(factories.count))]
  }

  public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
    factory(dimensions).makeCounter(label: label, dimensions: dimensions)
  }

  public func makeFloatingPointCounter(label: String, dimensions: [(String, String)])
    -> any FloatingPointCounterHandler
  {
    factory(dimensions).makeFloatingPointCounter(label: label, dimensions: dimensions)
  }

  public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool)
    -> any RecorderHandler
  {
    guard aggregate else { return gauges.handler(label: label, dimensions: dimensions) }
    return factory(dimensions).makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate)
  }

  public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
    factory(dimensions).makeMeter(label: label, dimensions: dimensions)
  }

  public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
    factory(dimensions).makeTimer(label: label, dimensions: dimensions)
  }

  // A handler does not say which shard made it; unregistering one a registry does not hold
  // leaves that registry as it is.
  public func destroyCounter(_ handler: any CounterHandler) {
    factories.forEach { $0.destroyCounter(handler) }
  }
  public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
    factories.forEach { $0.destroyFloatingPointCounter(handler) }
  }
  public func destroyRecorder(_ handler: any RecorderHandler) {
    gauges.destroy(handler)
    factories.forEach { $0.destroyRecorder(handler) }
  }
  public func destroyMeter(_ handler: any MeterHandler) { factories.forEach { $0.destroyMeter(handler) } }
  public func destroyTimer(_ handler: any TimerHandler) { factories.forEach { $0.destroyTimer(handler) } }

  /// One exposition of every shard and the gauges: each family's `# HELP` and `# TYPE` once,
  /// then all its samples, families in the order they first appear.
  public func emit() -> String {
    var order: [Substring] = []
    var headers: [Substring: [Substring]] = [:]
    var samples: [Substring: [Substring]] = [:]
    var texts: [String] = []
    texts.reserveCapacity(registries.count)
    for registry in registries { texts.append(registry.emitToString()) }
    for text in texts {
      var family: Substring = ""
      for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
        if line.hasPrefix("# ") {
          let parts = line.split(separator: " ", maxSplits: 3)
          guard parts.count >= 3 else { continue }
          family = parts[2]
          if headers[family] == nil {
            order.append(family)
            headers[family] = []
          }
          // Each header once, from the first shard that has the family.
          if !(headers[family]?.contains { $0.hasPrefix(line.prefix(7)) } ?? false) {
            headers[family, default: []].append(line)
          }
        } else {
          samples[family, default: []].append(line)
        }
      }
    }
    var out = ""
    for family in order {
      for line in headers[family] ?? [] { out += line + "\n" }
      for line in samples[family] ?? [] { out += line + "\n" }
    }
    gauges.emit(into: &out)
    return out
  }
}
