import CapstanCore
import Foundation

/// libFuzzer's entry point, for a program that has its own main (as SwiftPM executables do).
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
  _ argc: UnsafeMutablePointer<Int32>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// Hands the process to libFuzzer, which calls `body` with each input.
public func fuzz(_ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
  var argc = CommandLine.argc
  var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
  exit(runDriver(&argc, &argv, body))
}

/// A harness's own policy, which loads or the harness is broken.
public func fixedPolicy(yaml: String) -> Policy {
  do {
    return try PolicyLoader.load(yaml: yaml, file: "fuzz.yaml").policy
  } catch {
    fatalError("the fuzz harness's policy does not load: \(error)")
  }
}
