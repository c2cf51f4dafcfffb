import CapstanKubernetes
import Foundation
import Testing

@Suite("The state ConfigMap, whole or in parts")
struct ConfigMapStateStoreTests {
  /// A state document of about `bytes` bytes, with characters of one to four bytes in UTF-8,
  /// so a cut between parts could fall inside one.
  func document(bytes: Int) -> Data {
    let pattern = "{\"é\":\"日本\",\"🙂\":1,\"abc\":[1,2,3]}"
    return Data(String(repeating: pattern, count: bytes / pattern.utf8.count).utf8)
  }

  /// A store of 1000-byte parts, holding a state of 2500 bytes: a head and three parts.
  func savedInThreeParts() async throws -> (APIFixture, ConfigMapStateStore) {
    let fixture = try await APIFixture.start()
    let store = ConfigMapStateStore(
      client: fixture.client, namespace: "ai", name: "capstan-state", partBytes: 1000)
    try await store.save(document(bytes: 2500))
    return (fixture, store)
  }

  @Test(
    "a state under the part size is one ConfigMap; a larger one round-trips through parts of the other set each save"
  )
  func parts() async throws {
    let fixture = try await APIFixture.start()
    let store = ConfigMapStateStore(
      client: fixture.client, namespace: "ai", name: "capstan-state", partBytes: 1000)
    #expect(try await store.load() == nil)

    let small = document(bytes: 900)
    try await store.save(small)
    #expect(try await store.load() == small)
    let whole = try await fixture.server.object("ConfigMap", named: "capstan-state")
    #expect(
      (whole?["data"] as? [String: String])?[ConfigMapStateStore.key]
        == String(decoding: small, as: UTF8.self))

    let large = document(bytes: 3500)
    try await store.save(large)
    let head = try #require(
      try await fixture.server.object("ConfigMap", named: "capstan-state")?["data"] as? [String: String])
    #expect(head == ["parts": "4", "set": "a", "generation": "1"])
    for index in 0..<4 {
      let part = try await fixture.server.object("ConfigMap", named: "capstan-state-a-\(index)")
      let text = try #require((part?["data"] as? [String: String])?[ConfigMapStateStore.key])
      #expect(text.utf8.count <= 1000)
    }
    // A new store, as a new leader: it reads the parts back into the document.
    let reader = ConfigMapStateStore(
      client: fixture.client, namespace: "ai", name: "capstan-state", partBytes: 1000)
    #expect(try await reader.load() == large)

    // The next save writes set b and then the head, so set a stays whole until the head moves.
    let larger = document(bytes: 4200)
    try await reader.save(larger)
    let moved =
      try await fixture.server.object("ConfigMap", named: "capstan-state")?["data"] as? [String: String]
    #expect(moved == ["parts": "5", "set": "b", "generation": "2"])
    #expect(try await store.load() == larger)
    func version(_ name: String) async throws -> Int {
      let metadata = try await fixture.server.object("ConfigMap", named: name)?["metadata"] as? [String: Any]
      return Int(metadata?["resourceVersion"] as? String ?? "") ?? .max
    }
    let headVersion = try await version("capstan-state")
    for index in 0..<5 { #expect(try await version("capstan-state-b-\(index)") < headVersion) }

    // Back under the part size: the state is whole in the head again.
    try await store.save(small)
    #expect(try await reader.load() == small)
  }

  @Test("a part of another generation, or a missing one, is refused on reading, by name")
  func torn() async throws {
    let (fixture, store) = try await savedInThreeParts()
    func writePart1(generation: Int) async throws {
      _ = try await fixture.server.api(
        "PUT", "/api/v1/namespaces/ai/configmaps/capstan-state-a-1", token: "admin-token",
        body:
          #"{"metadata": {"name": "capstan-state-a-1"}, "data": {"state.json": "x", "generation": "\#(generation)"}}"#
      )
    }
    func expectRefused(_ message: String) async {
      await #expect {
        _ = try await store.load()
      } throws: { error in
        "\(error)".contains(message)
      }
    }
    try await writePart1(generation: 7)
    await expectRefused(
      "configmap ai/capstan-state-a-1 holds generation 7, not the 1 that capstan-state names")
    try await fixture.server.deleteWorkload(
      api: "api/v1", plural: "configmaps", namespace: "ai", name: "capstan-state-a-2")
    try await writePart1(generation: 1)
    await expectRefused(
      "configmap ai/capstan-state-a-2, part 3 of 3 of the state capstan-state names, is missing")
    // A save replaces the torn state.
    try await store.save(document(bytes: 2600))
    #expect(try await store.load() == document(bytes: 2600))
  }

  @Test("a head someone else wrote since it was read is read again, and the parts' save goes through")
  func conflict() async throws {
    let (fixture, store) = try await savedInThreeParts()
    // Someone edits the head: its resourceVersion moves past the one the store holds.
    _ = try await fixture.server.api(
      "PUT", "/api/v1/namespaces/ai/configmaps/capstan-state", token: "admin-token",
      body: #"{"metadata": {"name": "capstan-state"}, "data": {"note": "edited"}}"#)
    let next = document(bytes: 3100)
    try await store.save(next)
    let statuses = try await fixture.server.requests().filter {
      $0.path.hasSuffix("/configmaps/capstan-state")
    }
    .compactMap(\.status)
    #expect(statuses.contains(409))
    #expect(try await store.load() == next)
  }

  @Test(
    "the API server's 1 MiB: a state of 2.5 MB saves in parts at the default size; one ConfigMap that large is refused"
  )
  func megabytes() async throws {
    let fixture = try await APIFixture.start()
    let large = document(bytes: 2_500_000)
    let store = ConfigMapStateStore(client: fixture.client, namespace: "ai", name: "capstan-state")
    try await store.save(large)
    #expect(try await store.load() == large)
    let unparted = ConfigMapStateStore(
      client: fixture.client, namespace: "ai", name: "other-state", partBytes: 3_000_000)
    await #expect {
      try await unparted.save(large)
    } throws: { error in
      "\(error)".contains("Too long: must have at most 1048576 bytes")
    }
  }
}
