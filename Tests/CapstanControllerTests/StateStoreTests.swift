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

  @Test(
    "written in the background: in order, the last document on disk after a flush, a failure said and then cleared"
  )
  func background() throws {
    let folder = try scratchDirectory("state-writer")
    let store = try StateStore<Document>(directory: folder, name: "state.json", durable: false)
    let writer = BackgroundStateWriter { try store.save(encoded: $0) }
    for spent in 0..<200 {
      writer.write(try StateStore<Document>.encode(Document(spent: Double(spent), names: ["api"])))
    }
    writer.flush()
    #expect(try store.load() == Document(spent: 199, names: ["api"]))
    #expect(writer.lastFailure == nil)

    // A folder where the file should be: the write fails, and says why.
    try FileManager.default.removeItem(at: store.url)
    try FileManager.default.createDirectory(at: store.url, withIntermediateDirectories: false)
    writer.write(try StateStore<Document>.encode(Document(spent: 1, names: [])))
    writer.flush()
    #expect(writer.lastFailure?.contains("state.json") == true)
    try FileManager.default.removeItem(at: store.url)
    writer.write(try StateStore<Document>.encode(Document(spent: 2, names: [])))
    writer.flush()
    #expect(writer.lastFailure == nil)
    #expect(try store.load() == Document(spent: 2, names: []))
  }
}
