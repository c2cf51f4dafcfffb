import CapstanRuntime
import CapstanTestKit
import Foundation
import Testing

@Suite("The state file")
struct StateStoreTests {
  struct Document: Codable, Equatable {
    var spent: Double
    var names: [String]
  }

  @Test(
    "durable or not, a save replaces the file whole, leaves no temporary file, and reads back",
    arguments: [true, false])
  func replaces(durable: Bool) throws {
    let folder = try scratchDirectory("state-store")
    let store = try StateStore<Document>(directory: folder, name: "state.json", durable: durable)
    #expect(try store.load() == nil)
    for spent in [1.5, 2.5] {
      let document = Document(spent: spent, names: ["api", "worker"])
      try store.save(document)
      #expect(try store.load() == document)
      #expect(
        FileManager.default.contents(atPath: store.url.path) == (try StateStore<Document>.encode(document)))
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["state.json"])
  }
}
