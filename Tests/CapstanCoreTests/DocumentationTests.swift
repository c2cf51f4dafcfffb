import Foundation
import Testing

@testable import CapstanCore

/// The README and docs/ are what users read first: the policy they show loads, and every link
/// to a file in the repository leads somewhere.
@Suite("Documentation")
struct DocumentationTests {
  static let root = fixturesURL().appendingPathComponent("../../..").standardized

  static var pages: [URL] {
    let docs = root.appendingPathComponent("docs")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: docs.path)) ?? []
    return [root.appendingPathComponent("README.md")]
      + names.filter { $0.hasSuffix(".md") }.sorted().map { docs.appendingPathComponent($0) }
  }

  @Test("the README's policy is policies/quick-start.yaml, and it loads with no warning")
  func readmePolicy() throws {
    let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
    let file = try String(
      contentsOf: Self.root.appendingPathComponent("policies/quick-start.yaml"), encoding: .utf8)
    let body = file.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("# ") }
      .joined(separator: "\n").trimmingCharacters(in: .newlines)
    let shown = try #require(readme.components(separatedBy: "```yaml\n").dropFirst().first)
      .components(separatedBy: "```").first?.trimmingCharacters(in: .newlines)
    #expect(shown == body)
    #expect(try PolicyLoader.load(yaml: file, file: "quick-start.yaml").warnings.isEmpty)
  }

  @Test("every example policy loads with no warning, but the one that shows mistakes")
  func examplePolicies() throws {
    let examples = Self.root.appendingPathComponent("examples")
    let files = try #require(FileManager.default.enumerator(atPath: examples.path)).compactMap {
      $0 as? String
    }
    .filter { $0.hasSuffix(".yaml") && !$0.hasPrefix("mistakes/") }.sorted()
    #expect(files.contains("slo/image-slo.yaml") && files.count > 10, "\(files)")
    for file in files {
      let text = try String(contentsOf: examples.appendingPathComponent(file), encoding: .utf8)
      let loaded = try PolicyLoader.load(yaml: text, file: file)
      #expect(loaded.warnings.isEmpty, "\(file): \(loaded.warnings)")
    }
  }

  @Test("every relative link in the README and docs/ names a file that exists")
  func links() throws {
    #expect(Self.pages.count > 5)
    for page in Self.pages {
      let text = try String(contentsOf: page, encoding: .utf8)
      for match in text.matches(of: #/\]\(([^)#\s]+)(#[^)]*)?\)/#) {
        let target = String(match.1)
        guard !target.hasPrefix("http") else { continue }
        let url = page.deletingLastPathComponent().appendingPathComponent(target).standardized
        #expect(
          FileManager.default.fileExists(atPath: url.path), "\(page.lastPathComponent) links to \(target)")
      }
    }
  }
}
