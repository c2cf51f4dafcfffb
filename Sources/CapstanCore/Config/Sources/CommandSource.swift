import Foundation

// The `command` signal source: a program that prints one number. Its settings, its YAML form and its
// validation; the reader is in CapstanSignals. Registered in `SignalSourceKind.all`.

/// A program whose standard output is one number. Run without a shell.
public struct CommandSignalSettings: Sendable, Equatable, Codable {
  public var argv: [String]
  public var timeout: TimeInterval = 5

}

struct RawCommandSource: Decodable {
  var argv: RawArgv?
  var timeout: RawScalar?

  enum CodingKeys: String, CodingKey, CaseIterable { case argv, timeout }
}

extension PolicyValidator {
  func validateCommand(_ command: RawCommandSource, name: RawScalar) -> SignalSource? {
    guard let argv = argv(command.argv, what: "signals.\(name.text).command.argv", at: name.location) else {
      return nil
    }
    return .command(
      CommandSignalSettings(
        argv: argv,
        timeout: command.timeout.flatMap { timeout($0) } ?? PolicyDefaults.signalTimeout))
  }
}
